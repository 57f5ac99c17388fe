"""Figures of one training run: loss curves (one panel per loss, small multiples per model
family when many runs are compared) and reconstruction examples."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from tasks.evaluation.plots import save_figure


def family_and_variant(run_name: str) -> tuple[str, str]:
    """``"beta_vae [beta=4]"`` -> ``("beta_vae", "beta=4")``, the naming of the evaluation's
    figures; a name without ``" ["`` is a family of its own and its own variant."""
    family, _, variant = run_name.partition(" [")
    return family, variant.removesuffix("]") or run_name


def _draw_curves(axes: Any, runs: dict[str, dict[str, list[float]]], quantity: str) -> None:
    """A line per run of ``quantity``, coloured by the run's position among ``runs`` so it
    keeps its colour in panels where another run has no values."""
    curves = {label: np.asarray(h.get(quantity, []), dtype=np.float64) for label, h in runs.items()}
    for position, (label, values) in enumerate(curves.items()):
        if values.size:
            axes.plot(np.arange(1, values.size + 1), values, label=label, color=f"C{position % 10}")
    finite = [float(v) for values in curves.values() for v in values[np.isfinite(values)]]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        axes.set_yscale("log")
    if not axes.get_lines():
        axes.text(0.5, 0.5, "not recorded", ha="center", va="center", color="grey")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def training_curves(histories: dict[str, dict[str, list[float]]], path: str | Path) -> Path:
    """Small multiples: a block of panels per model family (a panel per quantity, 3 a row at
    most), a line per run of the family. Why: the overview draws 15+ runs, which in one panel
    per quantity would be 15 lines in repeating colours; a family's variants (the betas of
    ``beta_vae``) share a panel and a short legend, and families' losses are on different
    scales anyway (spectrogram and descriptor inputs).

    Args:
        histories: ``{run_name: {quantity: per-epoch values}}``, e.g.
            ``{"conv_vae [log-mel crops]": {"train_loss": [...], "val_loss": [...]}}``; see
            :func:`family_and_variant` for the family (a block) and variant (a legend entry).
        path: PNG file to write.

    A panel uses a logarithmic y axis when all its values are positive and span a factor > 100.

    Raises:
        ValueError: no run has any values.
    """
    quantities: list[str] = []
    for history in histories.values():
        quantities.extend(q for q, v in history.items() if len(v) and q not in quantities)
    if not quantities:
        raise ValueError("histories hold no values to plot")
    families: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run_name, history in histories.items():
        family, variant = family_and_variant(run_name)
        families.setdefault(family, {})[variant] = history
    columns = min(3, len(quantities))
    rows_per_family = math.ceil(len(quantities) / columns)
    grid_rows = rows_per_family * len(families)
    figure = Figure(figsize=(4.3 * columns + 1.8, 2.6 * grid_rows + 0.4), layout="constrained")
    for block, (family, runs) in enumerate(families.items()):
        for index, quantity in enumerate(quantities):
            first_panel = block * rows_per_family * columns + 1
            axes = figure.add_subplot(grid_rows, columns, first_panel + index)
            _draw_curves(axes, runs, quantity)
            axes.set_title(f"{family}: {quantity}", fontsize=9)
        if len(histories) > 1:  # one legend a block, right of its first row, every variant
            handles = [Line2D([], [], color=f"C{i % 10}") for i in range(len(runs))]
            figure.axes[block * len(quantities) + columns - 1].legend(
                handles, list(runs), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0)
            )
    if len(families) > 1:
        figure.suptitle("training curves by model family (one line per variant)")
    return save_figure(figure, path)


def reconstruction_examples(
    originals: np.ndarray, reconstructions: np.ndarray, path: str | Path
) -> Path:
    """Original and reconstructed log-mel spectrograms side by side, one row per example.

    Args:
        originals: np.ndarray [shape=(k, n_mels, frames)].
        reconstructions: np.ndarray, same shape.
        path: PNG file to write.

    Both images of a row share one colour scale, so a washed-out reconstruction looks washed out.

    Raises:
        ValueError: shapes differ or are not 3-D with k >= 1.
    """
    originals = np.asarray(originals, dtype=np.float64)
    reconstructions = np.asarray(reconstructions, dtype=np.float64)
    if originals.ndim != 3 or originals.shape != reconstructions.shape or not originals.shape[0]:
        raise ValueError(
            "originals and reconstructions must both be (k, n_mels, frames) with k >= 1; "
            f"got {originals.shape} and {reconstructions.shape}"
        )
    count = originals.shape[0]
    figure = Figure(figsize=(8, 2.2 * count + 0.4), layout="constrained")
    for row in range(count):
        low = min(originals[row].min(), reconstructions[row].min())
        high = max(originals[row].max(), reconstructions[row].max())
        for column, (image, name) in enumerate(
            ((originals[row], "original"), (reconstructions[row], "reconstruction"))
        ):
            axes = figure.add_subplot(count, 2, 2 * row + column + 1)
            shown = axes.imshow(
                image, origin="lower", aspect="auto", cmap="magma", vmin=low, vmax=high
            )
            axes.set_title(f"{name} {row + 1}", fontsize=9)
            axes.set_ylabel("mel band" if column == 0 else "")
            if row == count - 1:
                axes.set_xlabel("frame")
            else:
                axes.tick_params(labelbottom=False)
        figure.colorbar(shown, ax=figure.axes[-2:], fraction=0.03)
    return save_figure(figure, path)
