"""The audio stage (ingest): find the files (`discovery`), decode and validate them (`decoding`),
compute features (`features`), and the Prefect tasks and track table that tie them (`ingest`)."""
