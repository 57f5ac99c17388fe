"""The work of the pipeline: plain functions, wrapped as Prefect tasks where a flow calls them."""
