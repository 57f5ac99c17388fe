"""Prefect flows: one module per pipeline stage. `python -m flows --help` lists the commands."""
