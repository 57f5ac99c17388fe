"""The demo collection as a cached Prefect task: generated once per size, length and seed."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.core.caching import cached_on
from tasks.demo.writer import DemoSettings, generate_demo_dataset


@task(cache_policy=cached_on("tasks.demo"), persist_result=True)
def demo_collection(out_dir: Path, settings: DemoSettings) -> Path:
    """Generate the built-in demo collection (once; cached on its settings)."""
    return generate_demo_dataset(
        out_dir, tracks=settings.tracks, seed=settings.seed, duration_s=settings.duration_s
    ).root
