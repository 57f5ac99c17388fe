"""How far a training is: log lines every few epochs with the losses, silence unless asked, and a
progress bar only where a person watches a terminal."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.training.trainer import TrainingProgress, train_model
from tests.training.test_training import (
    N_TRACKS,
    cpu_config,
    structured_crops,
    tiny_model,
    train_and_validation,
    write_crop_arrays,
)

TRAINER_LOGGER = "tasks.training.trainer"
EPOCH_LINE = re.compile(r"^(?P<label>.+): epoch (?P<epoch>\d+)/(?P<epochs>\d+): (?P<terms>.+) \(")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def data(tmp_path: Path):
    x, owner = structured_crops()
    return train_and_validation(write_crop_arrays(tmp_path / "crops", x, owner, N_TRACKS))


def epoch_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    found = [EPOCH_LINE.match(r.getMessage()) for r in caplog.records if r.name == TRAINER_LOGGER]
    return [match for match in found if match]


def test_training_logs_the_first_every_nth_and_last_epoch_with_its_losses(
    data, caplog: pytest.LogCaptureFixture
) -> None:
    # given a 10-epoch training asked to report every 3 epochs (outside Prefect: module logger)
    train, validation = data
    caplog.set_level(logging.INFO, logger=TRAINER_LOGGER)
    train_model(
        tiny_model("mlp_vae"),
        train,
        validation,
        cpu_config(epochs=10, patience=100),
        progress=TrainingProgress(label="mlp_vae tiny", every=3, bar=False),
    )
    # then the lines name the model and the epoch, and carry the training and validation losses
    lines = epoch_lines(caplog)
    assert [int(m["epoch"]) for m in lines] == [1, 3, 6, 9, 10]
    assert {m["label"] for m in lines} == {"mlp_vae tiny"}
    assert {m["epochs"] for m in lines} == {"10"}
    terms = dict(term.rsplit(" ", 1) for term in lines[-1]["terms"].split(", "))
    assert {"train_loss", "train_reconstruction", "train_kl", "val_loss"} <= set(terms)
    assert all(np.isfinite(float(value)) for value in terms.values())


def test_by_default_a_line_comes_every_tenth_of_the_epochs() -> None:
    assert TrainingProgress(label="m").epochs_between_lines(40) == 4
    assert TrainingProgress(label="m").epochs_between_lines(5) == 1
    assert TrainingProgress(label="m", every=7).epochs_between_lines(40) == 7


def test_an_early_stop_is_reported_with_the_epoch_whose_weights_are_kept(
    data, caplog: pytest.LogCaptureFixture
) -> None:
    train, validation = data
    caplog.set_level(logging.INFO, logger=TRAINER_LOGGER)
    outcome = train_model(
        tiny_model("mlp_vae"),
        train,
        validation,
        # a learning rate this small barely moves the loss: patience 1 stops it soon
        cpu_config(epochs=30, patience=1, kl_warmup_epochs=0, learning_rate=1e-9),
        progress=TrainingProgress(label="slow", every=100, bar=False),
    )
    assert outcome.stopped_early
    messages = [r.getMessage() for r in caplog.records if r.name == TRAINER_LOGGER]
    last_epoch = len(outcome.history["train_loss"])
    assert [int(m["epoch"]) for m in epoch_lines(caplog)] == [1, last_epoch]
    assert messages[-1] == (
        f"slow: stopped early after epoch {last_epoch} (no improvement in 1 epochs); keeping "
        f"the weights of epoch {outcome.best_epoch + 1}"
    )


def test_without_progress_training_is_silent(data, caplog: pytest.LogCaptureFixture) -> None:
    # tuning trials and benchmarks train many models nobody watches epoch by epoch
    train, validation = data
    caplog.set_level(logging.DEBUG)
    train_model(tiny_model("mlp_vae"), train, validation, cpu_config(epochs=3))
    assert [r for r in caplog.records if r.name == TRAINER_LOGGER] == []


def test_vade_pretraining_is_reported_as_its_own_phase(
    data, caplog: pytest.LogCaptureFixture
) -> None:
    train, validation = data
    caplog.set_level(logging.INFO, logger=TRAINER_LOGGER)
    train_model(
        tiny_model("vade", n_components=3),
        train,
        validation,
        cpu_config(epochs=2, pretrain_epochs=2),
        progress=TrainingProgress(label="vade", bar=False),
    )
    labels = [m["label"] for m in epoch_lines(caplog)]
    assert labels == ["vade (pretrain)", "vade (pretrain)", "vade", "vade"]


def test_a_bar_is_drawn_when_asked(data, capsys: pytest.CaptureFixture[str]) -> None:
    train, validation = data
    train_model(
        tiny_model("mlp_vae"),
        train,
        validation,
        cpu_config(epochs=2),
        progress=TrainingProgress(label="barred", bar=True, logger=logging.getLogger("quiet")),
    )
    assert "barred" in capsys.readouterr().err
