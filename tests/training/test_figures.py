"""Training figures: loss curves stay readable with many models; reconstructions are drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.training import figures as figures_module
from tasks.training.figures import reconstruction_examples, training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


def test_training_curves_are_written(tmp_path: Path) -> None:
    histories = {
        "conv_vae": {"loss": [100.0, 10.0, 0.5], "kl": [0.1, 2.0, 3.0]},
        "ae": {"loss": [90.0, 20.0, 5.0]},
    }
    assert _is_png(training_curves(histories, tmp_path / "curves.png"))
    with pytest.raises(ValueError, match="no values"):
        training_curves({"empty": {"loss": []}}, tmp_path / "none.png")


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The matplotlib figures the training figures module saves, in order."""
    figures = []
    save = figures_module.save_figure

    def keep(figure, path):
        figures.append(figure)
        return save(figure, path)

    monkeypatch.setattr(figures_module, "save_figure", keep)
    return figures


# 16 runs as the evaluation names them ("method [features]"), in 6 families.
SIXTEEN_RUNS = [
    "ae [default]",
    "mlp_vae [audio_only]",
    "conv_vae [log-mel crops]",
    "vade [n_components=8]",
    *(f"beta_vae [beta={beta}]" for beta in ("0.5", "1", "2", "4", "8")),
    *(f"cvae [condition={target}]" for target in ("genre", "language")),
    *(f"multimodal_vae [fusion={f}]" for f in ("early", "late", "attention", "weighted", "gated")),
]


def test_training_curves_of_sixteen_models_get_one_block_per_family(
    tmp_path: Path, drawn_figures: list
) -> None:
    rng = np.random.default_rng(0)
    histories = {
        name: {"train_loss": list(50 + rng.random(20)), "val_loss": list(55 + rng.random(20))}
        for name in SIXTEEN_RUNS
    }
    assert _is_png(training_curves(histories, tmp_path / "curves.png"))

    (figure,) = drawn_figures
    families = ["ae", "mlp_vae", "conv_vae", "vade", "beta_vae", "cvae", "multimodal_vae"]
    assert len(figure.axes) == len(families) * 2  # a row per family, a panel per quantity
    titles = [axes.get_title() for axes in figure.axes]
    assert titles[:2] == ["ae: train_loss", "ae: val_loss"]
    assert titles[8:10] == ["beta_vae: train_loss", "beta_vae: val_loss"]
    legends = [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None]
    assert len(legends) == len(families)  # one short legend per family, outside its panels
    entries = [[text.get_text() for text in legend.get_texts()] for legend in legends]
    assert sum(len(names) for names in entries) == 16
    assert entries[4] == ["beta=0.5", "beta=1", "beta=2", "beta=4", "beta=8"]
    assert max(len(names) for names in entries) == 5  # no panel holds more than a family
    assert max(len(axes.get_lines()) for axes in figure.axes) == 5


def test_training_curves_of_one_model_keep_one_panel_per_quantity(
    tmp_path: Path, drawn_figures: list
) -> None:
    quantities = ["train_loss", "train_kl", "train_reconstruction", "val_loss", "val_kl"]
    history = {quantity: [3.0, 2.0, 1.5] for quantity in quantities}
    training_curves({"beta_vae-beta4-seed0": history}, tmp_path / "one.png")
    (figure,) = drawn_figures
    assert len(figure.axes) == len(quantities)  # wrapped 3 a row
    assert figure.axes[0].get_title() == "beta_vae-beta4-seed0: train_loss"
    assert all(axes.get_legend() is None for axes in figure.axes)  # one line needs no legend


def test_reconstruction_examples_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(2, 16, 20))
    path = reconstruction_examples(originals, 0.5 * originals, tmp_path / "rec.png")
    assert _is_png(path)
    with pytest.raises(ValueError, match="n_mels, frames"):
        reconstruction_examples(originals, originals[:1], tmp_path / "bad.png")
