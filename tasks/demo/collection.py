"""The demo collection as a cached Prefect task: generated once per size, length and seed."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.core.caching import cached_on
from tasks.demo.writer import generate_demo_dataset


@task(cache_policy=cached_on("tasks.demo"), persist_result=True)
def demo_collection(out_dir: Path, tracks: int, duration_s: float, seed: int = 0) -> Path:
    """Generate the built-in demo collection (once; cached on its size and seed)."""
    return generate_demo_dataset(out_dir, tracks=tracks, seed=seed, duration_s=duration_s).root
