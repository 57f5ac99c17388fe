"""PyTorch representation models. No Prefect, no MLflow, no file I/O in this package.

Pick a model by name with `models.zoo.build_model`; every model follows
`models.base.RepresentationModel`'s contract (`forward`, `loss_function`, `embed`,
`set_input_normalization`). The package itself imports nothing, so that `models.names` (the list
of model names) can be read without loading torch (the command line checks names with it).
"""
