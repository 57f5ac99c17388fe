"""The table code of bench/pipeline.py on hand-made samples and intervals (no pipeline run)."""

from __future__ import annotations

import pytest

from bench.pipeline import Interval, Sample, model_rows, per_track_fit, stage_rows, window


def _samples() -> list[Sample]:
    # 1 CPU second per wall second; RSS peaks at t = 12, PSS (half of it here) too
    return [
        Sample(
            t=float(t),
            rss=(300 if t == 12 else 100) * 2**20,
            cpu=float(t),
            pss=(150 if t == 12 else 50) * 2**20,
        )
        for t in range(21)
    ]


def test_window_interpolates_cpu_and_takes_the_peak_inside() -> None:
    figures = window(_samples(), 10.5, 14.0)
    assert figures["cpu_s"] == pytest.approx(3.5)
    assert figures["peak_mb"] == pytest.approx(300)
    assert figures["peak_pss_mb"] == pytest.approx(150)
    assert window([], 0, 1) == {"cpu_s": None, "peak_mb": None, "peak_pss_mb": None}


def test_stages_split_the_run_and_count_time_outside_tasks() -> None:
    flows = [
        Interval("pipeline", 2, 19, "p"),
        Interval("ingest", 4, 8, "i"),
        Interval("evaluate", 14, 18, "e"),
    ]
    tasks = [
        Interval("decode", 4.5, 6.5, "i"),
        Interval("features", 6, 7, "i"),  # overlaps decode: covered once
        Interval("train ae-seed0", 9, 11, "p"),
        Interval("train conv_vae-seed0", 11, 13, "p"),
        Interval("cluster", 14, 17, "e"),
    ]
    rows = {row["stage"]: row for row in stage_rows(flows, tasks, _samples(), 0.0, 20.0)}
    assert rows["start-up"]["wall_s"] == 2
    assert rows["demo data + other"]["wall_s"] == 2
    assert rows["ingest"]["orchestration_s"] == pytest.approx(1.5)
    assert rows["training"]["wall_s"] == 4
    assert rows["training"]["cpu_s"] == pytest.approx(4)
    assert rows["evaluate"]["orchestration_s"] == pytest.approx(1)
    assert rows["finish"]["wall_s"] == 2


def test_model_rows_separate_the_training_loop_from_the_rest() -> None:
    tasks = [Interval("train ae-seed0", 9, 11, "p"), Interval("decode", 1, 2, "i")]
    (row,) = model_rows(tasks, {"ae-seed0": 1.5}, _samples())
    assert row == {
        "model": "ae-seed0",
        "wall_s": 2,
        "train_loop_s": 1.5,
        "outside_s": 0.5,
        "cpu_s": 2.0,
        "peak_mb": 100.0,
        "peak_pss_mb": 50.0,
    }


def test_per_track_fit_recovers_fixed_and_marginal_cost() -> None:
    fit = per_track_fit([100, 200, 400], [15.0, 25.0, 45.0])
    assert fit == {"fixed_s": pytest.approx(5), "per_track_s": pytest.approx(0.1)}
    assert per_track_fit([120, 120], [1.0, 2.0]) is None


def test_tree_sampler_sees_a_child_process_use_cpu_and_memory() -> None:
    import subprocess
    import sys

    from bench.pipeline import TreeSampler

    # touched pages (b"1" * n), not a zeroed buffer the kernel never maps
    busy = "import time\nx = b'1' * (50 * 2**20)\nend = time.time() + 0.6\n"
    busy += "while time.time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])",
        ]
    )
    sampler = TreeSampler(parent.pid, interval=0.05)
    sampler.start()
    parent.wait()
    sampler.stop()
    assert max(s.rss for s in sampler.samples) > 50 * 2**20  # the grandchild's buffer
    assert max(s.pss for s in sampler.samples) > 50 * 2**20  # its own pages: all in its PSS
    assert sampler.samples[-1].cpu > 0.3
