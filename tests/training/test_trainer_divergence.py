"""A training whose loss stops being finite: the run failed (exit code 1 on the command line),
not the user's mistake, and the message says what to try."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import RunFailure, UserInputError
from tasks.training.trainer import NonFiniteLossError, train_model
from tests.training.test_training import (
    N_TRACKS,
    VALIDATION_TRACKS,
    cpu_config,
    structured_crops,
    tiny_model,
    train_and_validation,
    write_crop_arrays,
)


def test_a_diverged_validation_loss_names_model_epoch_and_the_learning_rate(
    tmp_path: Path,
) -> None:
    # Bug: a validation loss gone to NaN (what a learning rate far too high gives on real
    # features) only said to check the validation tracks' features, and the error was a user's
    # mistake (exit code 2) although every setting was valid.
    x, owner = structured_crops()
    x[owner == VALIDATION_TRACKS[-1]] = np.inf
    train, validation = train_and_validation(write_crop_arrays(tmp_path, x, owner, N_TRACKS))

    with pytest.raises(NonFiniteLossError) as raised:
        train_model(tiny_model("mlp_vae"), train, validation, cpu_config(epochs=2))

    message = str(raised.value)
    assert message.startswith("mlp_vae: the validation loss became ")
    assert " at epoch 1 " in message
    assert "Try a lower learning rate (now 0.001)" in message
    assert isinstance(raised.value, RunFailure)
    assert isinstance(raised.value, RuntimeError)  # a tuning trial fails, the study goes on
    assert not isinstance(raised.value, UserInputError)
