"""Trainings (and figures) side by side in "lanes": the calling process is one lane, worker
processes the others; each lane does one job at a time.

Why processes and not threads: torch's random generator is one per process, so two trainings in
threads would draw each other's dropout and sampling noise and a seed would no longer give the
same model. Why at all: on a CPU a small MLP-family model trains on one core whatever torch's
thread count (measured on the 2-core machine: 1.0 CPU-s per wall-s at 2 threads), so the other
cores only help with other trainings. Every lane gets `cores // lanes` torch threads, so lanes do
not oversubscribe the machine. The caller is a lane itself because each worker process costs
~0.8 GB of imports (torch alone 0.5 GB).

Only the computation crosses into a worker (`run_in_lane`): the function and its arguments are
pickled to our own child process and its small result pickled back; MLflow, Prefect and the
caller's callbacks stay in the calling process.

The evaluation draws its figures in the same lanes: matplotlib holds the GIL while it draws, so
figures drawn in threads of one process use one core.

Cores of idle lanes go to the busy ones: a training calls `share_idle_cores` between steps and
takes `cores // busy lanes` threads, so the long convolutional VAE (1.6x faster on two threads)
finishes on every core once the small models are done instead of leaving them idle. The price:
with more threads torch sums in another order, so such a training is not reproduced bit for bit
(as on a GPU: the conv VAE's NMI on the demo moved by up to 0.05 between runs); one that kept its
share throughout is reproduced exactly.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import torch

# More lanes than this gain little on bigger machines (each lane holds its own copy of the crops
# and ~0.5 GB of imports) and give a big model fewer threads.
MAX_LANES = 4

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
# Held while this process's own lane trains.
_own_lane = threading.Lock()
# How many jobs the lanes hold now (running, or queued for a worker: then it errs towards fewer
# threads), in shared memory: written by the caller alone (under `_counting`), read by every
# lane, so no lock between processes is needed.
_busy_lanes: Any = None  # a ctypes c_int in shared memory while lanes are open
_counting = threading.Lock()
# Torch threads of a lane when every lane trains: its share of the cores.
_lane_threads = 1
# Lanes of the open pool, the caller's included.
_lane_count = 1


def default_lanes(cores: int | None = None) -> int:
    """Lanes for this machine: one per core, at most `MAX_LANES`."""
    return max(1, min(MAX_LANES, cores or os.cpu_count() or 1))


@contextmanager
def open_lanes(lanes: int | None = None) -> Iterator[int]:
    """Open `lanes` lanes (default `default_lanes()`) for `run_in_lane` until the block ends:
    this process and `lanes - 1` worker processes. Yields how many jobs may run at once.
    One lane opens no process: the jobs run in the caller, one after the other. Inside a block
    that opened lanes (the pipeline's evaluation inside its lanes) it uses those and yields their
    number."""
    global _pool, _busy_lanes, _lane_threads, _lane_count
    if _pool is not None:
        yield _lane_count
        return
    count = lanes or default_lanes()
    if count <= 1:
        yield 1
        return
    threads = max(1, (os.cpu_count() or 1) // count)
    # spawn: the caller runs Prefect's and torch's threads, which a forked child would inherit
    # in whatever state they were.
    context = multiprocessing.get_context("spawn")
    busy = context.RawValue("i", 0)
    pool = ProcessPoolExecutor(
        max_workers=count - 1,
        mp_context=context,
        initializer=_start_lane,
        initargs=(threads, logging.getLogger().getEffectiveLevel(), busy),
    )
    with _lock:
        if _pool is not None:
            pool.shutdown()
            raise RuntimeError("lanes were opened by another thread of this process meanwhile")
        _pool, _busy_lanes, _lane_threads, _lane_count = pool, busy, threads, count
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)  # this process's lane
    try:
        yield count
    except BaseException:
        # Ctrl-C or a failure: stop the workers' trainings now instead of waiting for them.
        _stop_workers(pool)
        raise
    finally:
        with _lock:
            _pool, _busy_lanes = None, None
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads_before)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (what they were doing is lost; finished models are
    in their folders and MLflow already)."""
    # ProcessPoolExecutor has no public way to stop busy workers before Python 3.14.
    processes = list(getattr(pool, "_processes", {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
    if manager is not None:  # it lets go of the pool's queues once it sees the workers gone
        manager.join(timeout=10)


def run_in_lane(
    function: Callable[_Params, _Result], *args: _Params.args, **kwargs: _Params.kwargs
) -> _Result:
    """`function(*args, **kwargs)` in a free lane when lanes are open (this process's when it is
    free, else the next free worker's), else here. `function` must be importable by name and
    its arguments and result picklable; an exception it raises is raised here."""
    pool = _pool
    if pool is None:
        return function(*args, **kwargs)
    with _counted_job():
        if _own_lane.acquire(blocking=False):
            try:
                return _with_lane_threads(function, args, kwargs)
            finally:
                _own_lane.release()
        return pool.submit(_with_lane_threads, function, args, kwargs).result()


@contextmanager
def _counted_job() -> Iterator[None]:
    """Count a job among the lanes' busy ones while the block runs (in the caller)."""
    busy = _busy_lanes
    if busy is None:  # closed meanwhile
        yield
        return
    with _counting:
        busy.value += 1
    try:
        yield
    finally:
        with _counting:
            busy.value -= 1


def _with_lane_threads(
    function: Callable[..., _Result], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _Result:
    """`function(*args, **kwargs)` with the lane's share of the cores (more only where it calls
    `share_idle_cores`); what it freed goes back to the system when it ends."""
    torch.set_num_threads(_lane_threads)
    try:
        return function(*args, **kwargs)
    finally:
        return_freed_memory()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _malloc_trim()


def return_freed_memory() -> None:
    """Give the pages of the heap that hold nothing back to the system (glibc; nothing elsewhere).
    glibc keeps a process's freed heap for its next allocations: after a conv VAE training a lane
    held ~250 MB it no longer used, so the next jobs and the figures ran on top of it."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def share_idle_cores() -> None:
    """Give the calling thread's torch computation `cores // busy lanes` threads when it runs in
    an open lane (nothing otherwise). Trainings call it between steps: a lane left alone takes
    the cores the finished lanes freed, and gives them back when they train again."""
    busy = _busy_lanes
    if busy is None:
        return
    threads = max(1, (os.cpu_count() or 1) // max(1, busy.value))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _start_lane(threads: int, log_level: int, busy: Any) -> None:
    """A worker lane's set-up: its share of the cores, the caller's log level on stderr (trainings'
    progress lines), and credentials redacted from log records as in the caller."""
    from tasks.core.redaction import install_log_redaction

    global _busy_lanes, _lane_threads
    # Ctrl-C reaches the whole process group; the caller handles it (and stops the workers), a
    # worker would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker's exit: multiprocessing has run its own exit work before the interpreter's hooks;
    # skip the interpreter's teardown of torch, Prefect and matplotlib (1.7 s the caller waited).
    atexit.register(_leave_at_once)
    _busy_lanes, _lane_threads = busy, threads
    torch.set_num_threads(threads)
    install_log_redaction()
    logging.basicConfig(level=log_level, format="%(asctime)s | %(levelname)-7s | %(message)s")


def _leave_at_once() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def lanes_open() -> bool:
    """Whether jobs (trainings, figures) in this process now go to worker processes."""
    return _pool is not None
