"""Cache policies: a task's result is reused only while its inputs *and the code it runs* are
unchanged.

Prefect's TASK_SOURCE hashes the task function alone; most of our work happens in the functions
and models it calls, so an upgraded trainer or model would otherwise return stale results.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy


@lru_cache(maxsize=32)
def source_digest(modules: tuple[str, ...]) -> str:
    """sha256 over the source files of the given modules (packages include all their files)."""
    digest = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        origin = Path(module.__file__)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class CodeSource(CachePolicy):
    """Cache key part: the source of the modules the task depends on."""

    modules: tuple[str, ...] = field(default_factory=tuple)

    def compute_key(self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kwargs: Any) -> str:
        return source_digest(self.modules)


def cached_on(*modules: str, exclude: tuple[str, ...] = ()) -> CachePolicy:
    """INPUTS (minus `exclude`) + the task's source + the source of `modules`."""
    inputs = INPUTS
    for name in exclude:
        inputs = inputs - name
    return inputs + TASK_SOURCE + CodeSource(modules=tuple(modules))
