"""The training stage: what to train (`representation.ModelSpec`, the pipeline's `comparison`),
data read from the feature store (`data`), one trainer for the zoo (`trainer`), and a trained
model on disk: its typed card (`model_card`) and safetensors weights (`checkpoint`)."""
