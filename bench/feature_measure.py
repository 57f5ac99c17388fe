"""Running one side of `bench/features.py` in a fresh subprocess, with its time, CPU and memory.

Wall time is taken from launch to exit (what a user waits for), CPU time from `wait4` (the
subprocess and the children it waited for), and peak memory twice: the largest sampled sum of RSS
over the process tree (the temporary Prefect server is a child) and the kernel's peak RSS of the
largest single process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.feature_sides import (
    CLI_SIDES,
    clip_paths,
    collect_cli_result,
    serve_state,
    subprocess_environment,
)

# The entry point that runs the in-process sides when called with `--worker SIDE`.
WORKER_SCRIPT = Path(__file__).resolve().with_name("features.py")
MEMORY_SAMPLE_S = 0.1


@dataclass(frozen=True)
class Measurement:
    """One subprocess run of one side on one set of clips."""

    side: str
    n_clips: int
    repeat: int | str  # "warmup" for the untimed runs
    wall_s: float  # from launch to exit, as a user would wait for it
    cpu_s: float  # user + system time of the subprocess and the children it waited for
    launch_s: float  # from launch to the worker's first line (interpreter start)
    import_s: float  # importing the libraries, measured inside the subprocess
    work_s: float  # the processing call itself (for ours: the flow, server start included)
    exit_s: float  # from the result written to the process reaped (shutdown, atexit hooks)
    peak_tree_mb: float  # largest sampled sum of RSS over the process tree
    peak_process_mb: float  # the kernel's peak RSS of the largest single process
    load_average: float  # 1-minute load average when the run started (other users of the CPUs)
    tracks: dict[str, dict[str, Any]]


class _TreeMemorySampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.peak_bytes = 0
        self.seen: dict[int, Any] = {}
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.is_set():
            total = 0
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                processes = []
            for process in processes:
                try:
                    total += process.memory_info().rss
                    self.seen.setdefault(process.pid, process)
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self.done.wait(MEMORY_SAMPLE_S)

    def stop_leftovers(self) -> None:
        """Terminate descendants that outlived the subprocess (none should; this is a guard)."""
        import psutil

        for pid, process in self.seen.items():
            if pid == self.root.pid:
                continue
            try:
                if process.is_running():
                    process.terminate()
            except psutil.Error:
                continue


def measure(side: str, data: Path, scratch: Path, repeat: int | str) -> Measurement:
    """Run one side on the clips of `data` in a fresh subprocess.

    Every run gets a fresh folder under `scratch` (work directory, logs); `ours` also gets fresh
    Prefect and MLflow databases there, while `ours_warm` shares `scratch/warm_stores`.

    Raises:
        RuntimeError: the subprocess failed (its log is printed).
    """
    run_dir = scratch / f"{side}-{data.name}-{repeat}"
    run_dir.mkdir(parents=True)
    result_file = run_dir / "result.json"
    stores = run_dir if side == "ours" else scratch / "warm_stores"
    # ours_serve shares the PREFECT_HOME of the running serve, where its record is.
    prefect_home = serve_state(scratch) / "prefect" if side == "ours_serve" else stores / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = subprocess_environment(stores, PREFECT_HOME=str(prefect_home))
    if side in CLI_SIDES:
        workdir = run_dir / "workdir"
        command = [sys.executable, "-m", "flows", "ingest", str(data), "--workdir", str(workdir)]
    else:
        command = [sys.executable, str(WORKER_SCRIPT), "--worker", side]
        command += ["--data", str(data), "--out", str(run_dir)]
    log_path = run_dir / "log.txt"
    with open(log_path, "w") as log:
        load_average = os.getloadavg()[0]
        launched_at = time.time()
        started = time.perf_counter()
        # cwd: MLflow's default artifact folder (./mlruns) lands next to the stores
        process = subprocess.Popen(command, cwd=stores, env=env, stdout=log, stderr=log)
        sampler = _TreeMemorySampler(process.pid)
        sampler.start()
        # wait4 returns this child's own resource usage (not the sum over all earlier children).
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        reaped_at = time.time()
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.done.set()
        sampler.join()
        sampler.stop_leftovers()
    if side in CLI_SIDES and process.returncode == 0:
        result_file.write_text(json.dumps(collect_cli_result(workdir)))
    if process.returncode != 0 or not result_file.exists():
        print(log_path.read_text()[-4000:], file=sys.stderr)
        raise RuntimeError(f"{side} on {data.name} failed with exit code {process.returncode}")
    result = json.loads(result_file.read_text())
    nan = float("nan")  # a CLI run has no inner clock: only its wall time from outside
    return Measurement(
        side=side,
        n_clips=len(clip_paths(data)),
        repeat=repeat,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        launch_s=result["entered_at"] - launched_at if "entered_at" in result else nan,
        import_s=result.get("import_s", nan),
        work_s=result.get("work_s", nan),
        exit_s=reaped_at - result["finished_at"] if "finished_at" in result else nan,
        peak_tree_mb=sampler.peak_bytes / 2**20,
        peak_process_mb=usage.ru_maxrss / 1024,  # Linux reports KiB
        load_average=load_average,
        tracks=result["tracks"],
    )
