"""Training lanes: trainings side by side in worker processes, each as reproducible as alone."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tasks.training import lanes
from tasks.training.lanes import default_lanes, lanes_open, open_lanes, run_in_lane
from tasks.training.trainer import NonFiniteLossError, train_model


def train_with_dropout(seed: int) -> tuple[int, int, list[float]]:
    """A small model whose training draws from torch's global generator (initialisation,
    dropout, noise): (process id, torch threads, final weights)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(400):  # long enough that two calls at once need both lanes
        x = torch.randn(32, 8)
        loss = (model(x).squeeze(1) - x.sum(dim=1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return os.getpid(), torch.get_num_threads(), weights.tolist()


@contextmanager
def _own_lane_busy() -> Iterator[None]:
    with lanes._own_lane:
        yield


def diverge(epoch: int) -> None:
    raise NonFiniteLossError(f"loss became nan at epoch {epoch}: lower the learning rate")


def test_without_open_lanes_the_training_runs_in_the_caller() -> None:
    assert not lanes_open()
    pid, _, _ = run_in_lane(train_with_dropout, 0)
    assert pid == os.getpid()
    with open_lanes(1) as lanes:  # one lane: no process either
        assert lanes == 1
        assert not lanes_open()
        assert run_in_lane(train_with_dropout, 0)[0] == os.getpid()


def test_trainings_side_by_side_give_what_each_gives_alone() -> None:
    """Two seeded trainings at once, each from its own thread of the caller (as the pipeline's
    task threads call them): one trains in this process's lane, the other in a worker process,
    both with their share of the cores, and each gives the weights it gives alone. In two
    threads of one process they would draw each other's random numbers."""
    alone = {seed: train_with_dropout(seed)[2] for seed in (1, 2)}
    results: dict[int, tuple[int, int, list[float]]] = {}
    together = threading.Barrier(2)

    def train(seed: int) -> None:
        together.wait()
        results[seed] = run_in_lane(train_with_dropout, seed)

    with open_lanes(2) as lanes:
        assert lanes == 2
        assert lanes_open()
        assert torch.get_num_threads() == max(1, (os.cpu_count() or 1) // 2)
        workers = [threading.Thread(target=train, args=(seed,)) for seed in (1, 2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert not lanes_open()
    pids = sorted(pid == os.getpid() for pid, _, _ in results.values())
    assert pids == [False, True]  # one here, one in a worker process
    assert all(threads == max(1, (os.cpu_count() or 1) // 2) for _, threads, _ in results.values())
    for seed in (1, 2):
        assert results[seed][2] == pytest.approx(alone[seed], rel=1e-5, abs=1e-6)
    assert results[1][2] != pytest.approx(results[2][2], rel=1e-3)


def test_a_training_that_diverges_in_a_lane_raises_the_same_error_in_the_caller() -> None:
    # In the worker process: this process's lane is taken.
    with (
        open_lanes(2),
        _own_lane_busy(),
        pytest.raises(NonFiniteLossError, match="epoch 7: lower the learning rate"),
    ):
        run_in_lane(diverge, 7)


def test_lanes_follow_the_cores_up_to_a_cap() -> None:
    assert default_lanes(1) == 1
    assert default_lanes(2) == 2
    assert default_lanes(64) == 4


def sleep_and_report(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_leaving_the_lanes_on_an_error_stops_a_busy_worker_at_once() -> None:
    """Ctrl-C (or a failed training) in the caller does not wait for a long training in a worker
    process: the worker is terminated, the call waiting for it fails, and the error goes on."""
    outcome: dict[str, object] = {}

    def wait_for_the_worker() -> None:
        try:
            outcome["pid"] = run_in_lane(sleep_and_report, 120.0)
        except Exception as error:  # the pool broke under it
            outcome["error"] = error

    def interrupted() -> None:
        with open_lanes(2):
            with _own_lane_busy():
                worker = threading.Thread(target=wait_for_the_worker)
                worker.start()
                time.sleep(5.0)  # the worker process starts and takes the call
            raise KeyboardInterrupt

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert time.perf_counter() - started < 60
    assert not lanes_open()
    deadline = time.perf_counter() + 30
    while "error" not in outcome and "pid" not in outcome and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert "pid" not in outcome
    assert isinstance(outcome["error"], BrokenProcessPool)


def threads_between_steps(seconds: float) -> list[int]:
    """The torch threads a training in a lane gets, sampled between its "steps" for `seconds`."""
    seen = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        lanes.share_idle_cores()
        seen.append(torch.get_num_threads())
        time.sleep(0.05)
    return seen


def test_a_lane_left_alone_takes_the_cores_of_the_idle_lanes() -> None:
    """While both lanes train each has half the cores; once this process's lane is done, the
    training still running in the worker takes all of them between its steps."""
    cores = os.cpu_count() or 1
    with open_lanes(2):
        short = threading.Thread(target=run_in_lane, args=(sleep_and_report, 8.0))
        short.start()
        while not lanes._own_lane.locked():  # the short job holds this process's lane
            time.sleep(0.01)
        seen = run_in_lane(threads_between_steps, 14.0)  # so this one goes to the worker
        short.join()
    assert seen[0] == max(1, cores // 2)
    assert seen[-1] == cores
    assert sorted(seen) == seen  # never fewer again: nothing else was submitted
    # Outside lanes it leaves torch's threads alone.
    before = torch.get_num_threads()
    lanes.share_idle_cores()
    assert torch.get_num_threads() == before


def train_and_report_threads(root: Path) -> int:
    """A small training through the real trainer; the torch threads it ended with."""
    from tests.training.test_training import (
        cpu_config,
        structured_crops,
        tiny_model,
        train_and_validation,
        write_crop_arrays,
    )

    x, owner = structured_crops()
    train, validation = train_and_validation(
        write_crop_arrays(root, x, owner, int(owner.max()) + 1)
    )
    train_model(tiny_model("mlp_vae"), train, validation, cpu_config(epochs=2))
    return torch.get_num_threads()


def test_the_trainer_takes_the_cores_of_idle_lanes(tmp_path: Path) -> None:
    """The trainer itself asks for idle lanes' cores between its steps: alone in the lanes, a
    training started with its lane's share ends on every core."""
    cores = os.cpu_count() or 1
    with open_lanes(2):
        assert run_in_lane(train_and_report_threads, tmp_path / "crops") == cores


_HEAP_GROWTH = """
import psutil
from tasks.training import lanes

def fragment_the_heap():
    # ~200 MB in 100 kB blocks (heap memory: under glibc's mmap threshold); every 20th is kept,
    # so the freed ones sit between live blocks, where the heap cannot shrink by itself
    blocks = [b"1" * 100_000 for _ in range(2000)]
    return blocks[::20]

process = psutil.Process()
before = process.memory_info().rss
kept = {call}
print(process.memory_info().rss - before, len(kept))
"""


def _heap_growth(call: str) -> int:
    """RSS growth of a fresh interpreter over `call` of `fragment_the_heap` (kept: 10 MB)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _HEAP_GROWTH.format(call=call)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    growth, kept = done.stdout.split()
    assert kept == "100"
    return int(growth)


def test_a_lane_job_gives_the_heap_it_freed_back_to_the_system() -> None:
    plain = _heap_growth("fragment_the_heap()")
    if plain < 100 * 2**20:
        pytest.skip("this allocator gives freed memory back by itself")
    assert _heap_growth("lanes._with_lane_threads(fragment_the_heap, (), {})") < 50 * 2**20
