"""Turning the measurements of `bench/features.py` into fitted costs, ratios and verdicts.

Costs are fitted per side as `startup + n_clips * marginal` from the fastest run of each size;
the ratios against librosa carry a verdict (`met`) where the issue states a target, and only when
the fit behind them is clean (`_fit_quality`) or the CPU bound decides (`_wall_per_clip_s`).
Features of the flow are compared per track with librosa's and with the plain core loop's.
`report` prints every table (with `bench.tables.print_table`) and returns the figures for --save.
"""

from __future__ import annotations

import os
from typing import Any

from bench.feature_measure import Measurement
from bench.feature_sides import CLI_SIDES
from bench.tables import print_table

# Per-track descriptors compared between ours and librosa: vectors are compared as a whole
# (relative L2 error), because single MFCC or contrast means can sit near zero.
VECTOR_DESCRIPTORS = ("mfcc", "chroma", "contrast")
SCALAR_DESCRIPTORS = ("centroid", "rolloff", "zcr", "rms", "tempo")
# The rows of the comparison table: (label, descriptor, slice of it). Spectral contrast is split
# because its top band (6.4 kHz .. Nyquist) depends on the resampler's anti-alias filter:
# librosa.load's soxr_hq cuts steeply below 11 kHz, so the valley of that band is near silence.
COMPARED = (
    ("mfcc means (20)", "mfcc", slice(None)),
    ("chroma means (12)", "chroma", slice(None)),
    ("contrast means, bands 0-5", "contrast", slice(0, 6)),
    ("contrast mean, top band", "contrast", slice(6, 7)),
    ("centroid mean", "centroid", None),
    ("rolloff mean", "rolloff", None),
    ("zcr mean", "zcr", None),
    ("rms mean", "rms", None),
    ("tempo (BPM)", "tempo", None),
)
TARGET_SPEEDUP = 5.0
TARGET_STARTUP_S = 5.0  # "a few seconds, not tens"


def _fit_quality(spread_s: float, signal_s: float, runs: int) -> str:
    """Whether a wall-time fit can be trusted: "ok", "noisy" or "single run".

    `signal_s` is t_big - t_small; `spread_s` the largest max - min over the repeats of one size.
    When the repeats of one size differ by more than half the signal, the marginal cost could be
    off by half or more (with a start-up cost of tens of seconds and a load that changes, a
    difference of a few seconds between the sizes is easily swamped).
    """
    if runs < 2:
        return "single run"
    return "ok" if signal_s > 0 and spread_s <= 0.5 * signal_s else "noisy"


# A run's figures as the runs table prints them: {Measurement field: column}, in printed order.
RUN_COLUMNS = {
    "side": "side",
    "n_clips": "clips",
    "repeat": "repeat",
    "wall_s": "wall_s",
    "launch_s": "launch_s",
    "import_s": "import_s",
    "work_s": "work_s",
    "exit_s": "exit_s",
    "cpu_s": "cpu_s",
    "peak_tree_mb": "peak_tree_MB",
    "peak_process_mb": "peak_1proc_MB",
    "load_average": "load",
}


def runs_table(measurements: list[Measurement]) -> Any:
    """One row per run (polars DataFrame), columns as in `RUN_COLUMNS`; tracks left out."""
    import polars as pl

    return pl.DataFrame(
        [{column: getattr(m, field) for field, column in RUN_COLUMNS.items()} for m in measurements]
    )


def fit_costs(measurements: list[Measurement], n_small: int, n_big: int) -> dict[str, Any]:
    """Per side: marginal and start-up cost (wall and CPU) from the fastest run of each size."""
    import polars as pl

    best = (
        runs_table(measurements)
        .group_by("side", "clips")
        .agg(
            pl.col("wall_s", "cpu_s", "import_s").min(),
            pl.col("peak_tree_MB", "peak_1proc_MB").max(),
            (pl.col("wall_s").max() - pl.col("wall_s").min()).alias("wall_spread_s"),
            (pl.col("cpu_s").max() - pl.col("cpu_s").min()).alias("cpu_spread_s"),
            pl.len().alias("runs"),
        )
    )
    costs = {}
    for side in dict.fromkeys(m.side for m in measurements):
        by_size = best.filter(pl.col("side") == side).iter_rows(named=True)
        rows = {row["clips"]: row for row in by_size}
        small, big = rows[n_small], rows[n_big]
        marginal = (big["wall_s"] - small["wall_s"]) / (n_big - n_small)
        cpu_marginal = (big["cpu_s"] - small["cpu_s"]) / (n_big - n_small)
        runs = min(small["runs"], big["runs"])
        costs[side] = {
            "wall_fit": _fit_quality(
                max(small["wall_spread_s"], big["wall_spread_s"]),
                big["wall_s"] - small["wall_s"],
                runs,
            ),
            "cpu_fit": _fit_quality(
                max(small["cpu_spread_s"], big["cpu_spread_s"]), big["cpu_s"] - small["cpu_s"], runs
            ),
            "marginal_s": marginal,
            "startup_s": small["wall_s"] - n_small * marginal,
            "cpu_marginal_s": cpu_marginal,
            "cpu_startup_s": small["cpu_s"] - n_small * cpu_marginal,
            "import_s": min(small["import_s"], big["import_s"]),
            "wall_small_s": small["wall_s"],
            "wall_big_s": big["wall_s"],
            "peak_tree_mb": max(small["peak_tree_MB"], big["peak_tree_MB"]),
            "peak_process_mb": max(small["peak_1proc_MB"], big["peak_1proc_MB"]),
        }
    return costs


def _relative_error(ours: Any, reference: Any) -> float:
    import numpy as np

    ours, reference = np.asarray(ours, dtype=float), np.asarray(reference, dtype=float)
    return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-12))


def _same_tempo(ours: float, reference: float, *, octaves: bool) -> bool:
    """Within 4 % (MIREX "Accuracy 1"), or also at x2, x3, 1/2, 1/3 ("Accuracy 2")."""
    factors = (1.0, 2.0, 3.0, 0.5, 1 / 3) if octaves else (1.0,)
    return any(abs(ours - f * reference) <= 0.04 * f * reference for f in factors)


def compare_features(ours: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]]) -> Any:
    """Per descriptor: median, 90th percentile and max relative error of ours against librosa."""
    import numpy as np
    import polars as pl

    common = sorted(set(ours) & set(reference))
    rows = []
    for label, name, part in COMPARED:

        def value(track: dict[str, Any], name: str = name, part: slice | None = part) -> Any:
            return track[name] if part is None else track[name][part]

        errors = np.array([_relative_error(value(ours[f]), value(reference[f])) for f in common])
        rows.append(
            {
                "descriptor": label,
                "median_rel_err": float(np.median(errors)),
                "p90_rel_err": float(np.quantile(errors, 0.9)),
                "max_rel_err": float(errors.max()),
                "tracks": len(common),
            }
        )
    table = pl.DataFrame(rows)
    tempo_acc1 = np.mean(
        [_same_tempo(ours[f]["tempo"], reference[f]["tempo"], octaves=False) for f in common]
    )
    tempo_acc2 = np.mean(
        [_same_tempo(ours[f]["tempo"], reference[f]["tempo"], octaves=True) for f in common]
    )
    return table, float(tempo_acc1), float(tempo_acc2)


def core_matches_flow(core: dict[str, dict[str, Any]], flow: dict[str, dict[str, Any]]) -> float:
    """Largest relative difference between the flow's stored features and the plain loop's."""
    worst = 0.0
    for name in set(core) & set(flow):
        for descriptor in VECTOR_DESCRIPTORS + SCALAR_DESCRIPTORS:
            worst = max(worst, _relative_error(flow[name][descriptor], core[name][descriptor]))
    return worst


# What each CLI side stands for, in the start-up rows of the ratios table.
CLI_LABELS = {
    "ours": "new Prefect/MLflow DBs",
    "ours_warm": "existing DBs, own temporary server",
    "ours_serve": "serve running",
}


def _wall_per_clip_s(c: dict[str, Any], cores: int) -> float:
    """Wall seconds per clip, never below CPU seconds per clip / cores.

    At small sizes a run's fixed part holds idle waits (the temporary server booting, Prefect
    flushing logs and events at the end) that absorb some of the added clips' work, so the
    wall fit can come out below what the CPU time allows; the CPU bound is then the honest
    figure.
    """
    return max(c["marginal_s"], c["cpu_marginal_s"] / cores)


def _trusted(c: dict[str, Any], cores: int) -> bool:
    """Whether `_wall_per_clip_s` of this side can carry a verdict (see `_fit_quality`)."""
    floor_used = c["cpu_marginal_s"] / cores >= c["marginal_s"]
    return c["cpu_fit"] == "ok" and (c["wall_fit"] == "ok" or floor_used)


def _startup_verdict(c: dict[str, Any], cores: int) -> str:
    """Whether a side's start-up meets the target: from the wall fit when it is clean, else from
    the bounds (the whole small run, or the CPU time alone over every core) when decisive."""
    if c["wall_fit"] == "ok":
        return str(c["startup_s"] <= TARGET_STARTUP_S)
    if c["wall_small_s"] <= TARGET_STARTUP_S:
        return "True (the whole small run is shorter)"
    if c["cpu_startup_s"] / cores > TARGET_STARTUP_S:
        return "False (CPU alone exceeds it)"
    return "unknown: noisy fit"


def _per_clip_rows(costs: dict[str, dict[str, Any]], cores: int) -> list[tuple]:
    """librosa's cost per clip over each CLI side's: bounded wall (with the speed-up verdict),
    then the wall fit alone, then CPU."""
    librosa = costs["librosa"]
    sides = [side for side in CLI_SIDES if side in costs]
    rows: list[tuple] = []
    for side in sides:
        c = costs[side]
        ratio = _wall_per_clip_s(librosa, cores) / _wall_per_clip_s(c, cores)
        trusted = _trusted(c, cores) and _trusted(librosa, cores)
        rows.append(
            (
                f"per clip, wall (>= CPU / {cores} cores): librosa / {side}",
                ratio,
                f">= {TARGET_SPEEDUP:g}x",
                str(ratio >= TARGET_SPEEDUP) if trusted else "unknown: noisy fit",
            )
        )
    rows += [
        (
            f"per clip, wall fit alone: librosa / {side}",
            librosa["marginal_s"] / costs[side]["marginal_s"],
        )
        for side in sides
    ]
    rows += [
        (
            f"per clip, CPU: librosa / {side}",
            librosa["cpu_marginal_s"] / costs[side]["cpu_marginal_s"],
        )
        for side in sides
    ]
    return rows


def _startup_rows(costs: dict[str, dict[str, Any]], cores: int) -> list[tuple]:
    """Start-up seconds of each CLI side against the target, then of the core loop and librosa
    (with the core loop's per-clip ratios to librosa: the cost of the computation alone)."""
    librosa = costs["librosa"]
    rows: list[tuple] = [
        (
            f"start-up, s: {side} ({CLI_LABELS[side]})",
            costs[side]["startup_s"],
            f"<= {TARGET_STARTUP_S:g} s",
            _startup_verdict(costs[side], cores),
        )
        for side in CLI_SIDES
        if side in costs
    ]
    if "core" in costs:
        core = costs["core"]
        rows += [
            ("per clip, wall: librosa / core loop", librosa["marginal_s"] / core["marginal_s"]),
            (
                "per clip, CPU: librosa / core loop",
                librosa["cpu_marginal_s"] / core["cpu_marginal_s"],
            ),
            ("start-up, s: core loop", core["startup_s"]),
        ]
    rows.append(("start-up, s: librosa", librosa["startup_s"]))
    return rows


def _ratio_rows(costs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline comparisons; `met` is given where the issue states a target.

    A verdict needs clean wall-time fits (see `_fit_quality`); a start-up whose CPU time alone,
    spread over every core, exceeds the target misses it whatever the fit.
    """
    cores = os.cpu_count() or 1
    memory = [
        (
            f"peak memory (tree): {side} / librosa",
            costs[side]["peak_tree_mb"] / costs["librosa"]["peak_tree_mb"],
        )
        for side in CLI_SIDES
        if side in costs
    ]
    rows = [*_per_clip_rows(costs, cores), *_startup_rows(costs, cores), *memory]
    padded = [row if len(row) == 4 else (*row, "", "-") for row in rows]  # no target: no verdict
    return [dict(zip(("comparison", "value", "target", "met"), row, strict=True)) for row in padded]


def _cost_table(costs: dict[str, dict[str, Any]]) -> Any:
    """The fitted costs, one row per side (polars DataFrame), as printed."""
    import polars as pl

    return pl.DataFrame(
        [
            {
                "side": side,
                "wall_fit": c["wall_fit"],
                "cpu_fit": c["cpu_fit"],
                "marginal_s_per_clip": c["marginal_s"],
                "startup_s": c["startup_s"],
                "imports_s": c["import_s"],
                "cpu_s_per_clip": c["cpu_marginal_s"],
                "cpu_startup_s": c["cpu_startup_s"],
                "peak_tree_MB": c["peak_tree_mb"],
                "peak_1proc_MB": c["peak_process_mb"],
            }
            for side, c in costs.items()
        ]
    )


def _print_load_and_fit_warning(
    measurements: list[Measurement], costs: dict[str, dict[str, Any]]
) -> None:
    """The load the runs saw, and which wall-time fits are not to be trusted."""
    unreliable = [side for side, c in costs.items() if c["wall_fit"] != "ok"]
    loads = [m.load_average for m in measurements]
    print(
        f"load average during the runs: {min(loads):.1f} .. {max(loads):.1f} on "
        f"{os.cpu_count()} CPUs. Wall times stretch with other processes' load; CPU seconds "
        "much less so, which makes the CPU ratios the steadier figures on a shared machine."
    )
    if unreliable:
        print(
            f"WARNING: the wall-time fit of {', '.join(unreliable)} is not trustworthy (repeats "
            "of one size differ by more than half the difference between the sizes, or a single "
            "run); run again with --repeats 3 and a larger --big when the machine is quieter."
        )


def _report_features(measurements: list[Measurement], n_big: int) -> dict[str, Any]:
    """Print how the flow's features on the big set compare with librosa's and the core loop's;
    return those figures (for --save)."""
    big_runs = [m for m in measurements if m.n_clips == n_big]
    flow_tracks = next(m.tracks for m in big_runs if m.side in CLI_SIDES)
    core_tracks = next((m.tracks for m in big_runs if m.side == "core"), {})
    librosa_tracks = next(m.tracks for m in big_runs if m.side == "librosa")
    errors, tempo_acc1, tempo_acc2 = compare_features(flow_tracks, librosa_tracks)
    print_table(
        f"Features of the flow vs librosa on the {n_big} clips "
        "(relative error; vectors compared as L2 norms)",
        errors,
        float_precision=3,
    )
    flow_vs_core = core_matches_flow(core_tracks, flow_tracks)
    print(
        f"tempo agreement: {tempo_acc1:.0%} within 4 %, {tempo_acc2:.0%} within 4 % allowing "
        f"x2/x3/÷2/÷3 (octave) errors; flow vs core loop: max relative difference "
        f"{flow_vs_core:.1e} ({len(core_tracks)} tracks)"
    )
    return {
        "feature_errors": errors.to_dicts(),
        "tempo_accuracy_1": tempo_acc1,
        "tempo_accuracy_2": tempo_acc2,
        "flow_vs_core_max_rel_diff": flow_vs_core,
    }


def report(measurements: list[Measurement], n_small: int, n_big: int) -> dict[str, Any]:
    """Print the tables; return the figures (for --save)."""
    import polars as pl

    runs = runs_table(measurements)
    print_table(
        "Runs (each a fresh subprocess; wall = launch .. reaped = launch + import + work + exit)",
        runs,
        float_precision=3,
    )
    costs = fit_costs(measurements, n_small, n_big)
    print_table(
        f"Cost model: wall = startup + clips * marginal (fit from {n_small} and {n_big} clips, "
        "fastest run of each)",
        _cost_table(costs),
        float_precision=3,
    )
    ratios = pl.DataFrame(_ratio_rows(costs))
    print_table("Ratios", ratios, float_precision=3)
    _print_load_and_fit_warning(measurements, costs)
    features = _report_features(measurements, n_big)
    return {
        "n_small": n_small,
        "n_big": n_big,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "runs": runs.to_dicts(),
        "costs": costs,
        "ratios": ratios.to_dicts(),
        **features,
    }
