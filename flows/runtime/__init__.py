"""Supervision code that is not a flow: the Prefect API a command uses (`prefect_api`), process
defaults (`environment`), and `serve` with its `supervisor`, `services`, `deployments` and
`state`."""
