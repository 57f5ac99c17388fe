"""The cache policy of every cached task: its inputs, its own source and the source of the code
it calls.

Prefect's TASK_SOURCE hashes the task function alone; most of our work happens in the functions
and models it calls, so an upgraded trainer or model would otherwise return stale results. The
code part is `tasks.core.hashing.code_digest`, which also keys the on-disk stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from prefect import Task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy

from tasks.core.hashing import CodeRef, code_digest, module_name, source_files


@dataclass
class CodeSource(CachePolicy):
    """Cache key part: `code_digest` of the modules the task depends on.

    The names are checked when the policy is built (at import of the task's module): a misspelt
    or renamed module fails there instead of silently leaving the key (Prefect only logs a
    warning when computing a key fails, and stops caching).
    """

    modules: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in self.modules:
            source_files(name)

    def compute_key(self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kwargs: Any) -> str:
        return code_digest(*self.modules)


def cached_on(*modules: CodeRef, exclude: tuple[str, ...] = ()) -> CachePolicy:
    """INPUTS (minus the parameters named in `exclude`) + the task's source + `code_digest` of
    `modules` (dotted names or module objects).

    Raises:
        ModuleNotFoundError: a module name does not exist.
    """
    inputs = INPUTS
    for name in exclude:
        inputs = inputs - name
    return inputs + TASK_SOURCE + CodeSource(modules=tuple(module_name(m) for m in modules))


R = TypeVar("R")


@dataclass(frozen=True)
class CachedRun(Generic[R]):
    """A task's result, and whether Prefect served it from its cache (nothing ran)."""

    result: R
    from_cache: bool


def run_with_outputs(
    task: Task[..., R], *args: Any, outputs: Callable[[R], Iterable[Path]]
) -> CachedRun[R]:
    """Run `task(*args)` in the current flow; if its result names files (`outputs(result)`) that
    no longer exist, run it again with a refreshed cache.

    Prefect's cache knows the inputs, not the files a task wrote: a result cached before a user
    deleted one output file would otherwise hand later tasks a path to nothing.

    Raises:
        Exception: whatever the task raised.
    """
    state = task(*args, return_state=True)
    result = state.result()
    if not all(Path(path).exists() for path in outputs(result)):
        state = task.with_options(refresh_cache=True)(*args, return_state=True)
        result = state.result()
    return CachedRun(result=result, from_cache=state.name == "Cached")
