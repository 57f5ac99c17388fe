"""Prefect flows: one module per pipeline stage. `python -m flows --help` lists the commands."""

from tasks.core.redaction import install_log_redaction

# A worker's flow-run process imports a flow module without our entry point: credentials in
# URLs are masked in its log records (sent to Prefect's database) from the first line on.
install_log_redaction()
