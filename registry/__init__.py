"""The only package that talks to MLflow: tracking setup, run logging, model registry, aliases."""
