"""Figures of an Optuna study: optimisation history, intermediate values, parameter importance.

Drawn with `matplotlib.figure.Figure` and the Agg renderer, never `pyplot` (its global state is
not thread-safe, and Prefect runs tasks in threads); Optuna's own matplotlib plots use pyplot.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import numpy as np
import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

STATE_STYLE = {
    TrialState.COMPLETE: ("tab:blue", "o", "complete"),
    TrialState.PRUNED: ("tab:gray", "x", "pruned (last intermediate value)"),
}


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def optimization_history_plot(trials: Sequence[FrozenTrial], metric: str, path: Path) -> Path:
    """Objective per trial (pruned trials at their last intermediate value) and the best so far.

    x: trial number; y: `metric` (higher is better). Returns `path` (PNG).
    """
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    for state, (color, marker, label) in STATE_STYLE.items():
        points = [
            (t.number, t.value if state == TrialState.COMPLETE else _last_value(t))
            for t in trials
            if t.state == state
        ]
        points = [(n, v) for n, v in points if v is not None and math.isfinite(v)]
        if points:
            numbers, values = zip(*points, strict=True)
            axes.scatter(numbers, values, c=color, marker=marker, label=label, zorder=3)
    complete = sorted(
        (t.number, t.value)
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None
    )
    if complete:
        numbers = [n for n, _ in complete]
        best = np.maximum.accumulate([v for _, v in complete])
        axes.step(numbers, best, where="post", color="tab:red", label="best so far")
    failed = sum(t.state == TrialState.FAIL for t in trials)
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    axes.set_title(f"Optimisation history ({len(trials)} trials, {failed} failed)")
    if axes.has_data():
        axes.legend(loc="best")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def intermediate_values_plot(trials: Sequence[FrozenTrial], metric: str, path: Path) -> Path:
    """`metric` per epoch of every trial; pruned trials in grey end where they were stopped."""
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    for trial in trials:
        if not trial.intermediate_values:
            continue
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        pruned = trial.state == TrialState.PRUNED
        axes.plot(
            [s + 1 for s in steps],
            values,
            color="tab:gray" if pruned else "tab:blue",
            alpha=0.6 if pruned else 0.8,
            linewidth=1.0,
            marker="x" if pruned else None,
            markevery=[len(steps) - 1] if pruned else None,
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title("Intermediate values (grey: pruned, x where stopped)")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def parameter_importance_plot(study: optuna.Study, path: Path) -> Path | str:
    """fANOVA importance of the parameters every completed trial has, as horizontal bars.

    Returns `path`, or a one-line reason when importance cannot be computed (fewer than two
    completed trials, or no parameter shared by all of them).
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return f"parameter importance needs >= 2 completed trials; the study has {len(complete)}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:
        return f"parameter importance could not be computed: {error}"
    if not importances:
        return "parameter importance: no parameter is shared by all completed trials"
    names = list(importances)[::-1]
    figure = Figure(figsize=(7, 0.4 * len(names) + 1.5))
    axes = figure.add_subplot()
    axes.barh(names, [importances[n] for n in names], color="tab:blue")
    axes.set_xlabel("importance (fANOVA, share of objective variance)")
    axes.set_title(f"Parameter importance ({len(complete)} completed trials)")
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def _last_value(trial: FrozenTrial) -> float | None:
    if not trial.intermediate_values:
        return None
    return trial.intermediate_values[max(trial.intermediate_values)]
