"""UMAP whose numba functions are compiled once per installation instead of once per process.

umap-learn declares about 140 numba functions without `cache=True`, so every process that drew a
UMAP map compiled them again: 10 - 17 s of each evaluation on this 2-core CPU, more than the map
itself takes at 1,000 tracks (0.2 s at 120). `load_umap` turns numba's on-disk cache on for them
(numba keeps it next to the sources, in the virtual environment's `__pycache__` folders, keyed on
the source files and the CPU), and `make install` compiles them once with
`python -m tasks.evaluation.umap_compiled`. The cache holds machine code compiled here from the
installed package, nothing from a user's files or artifacts.
"""

from __future__ import annotations

import threading
import time
from types import ModuleType

import numpy as np

_lock = threading.Lock()
_enabled = False


def load_umap() -> ModuleType:
    """The `umap` package with the on-disk cache on for every numba function it defines."""
    global _enabled
    import umap  # slow to import (numba, pynndescent); only when a map is asked for

    with _lock:
        if not _enabled:
            _cache_numba_functions()
            _enabled = True
    return umap


def _cache_numba_functions() -> None:
    """Enable caching on the module-level numba functions of umap-learn (pynndescent caches its
    own)."""
    import umap.distances
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.caching import FunctionCache
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts, umap.spectral, umap.utils, umap.distances):
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and not isinstance(value._cache, FunctionCache):
                value.enable_caching()


def compile_umap(points: int = 120, dims: int = 16) -> float:
    """Draw one small map so that the functions a map needs are compiled and cached; returns
    the seconds it took (a fraction of a second once the cache is warm)."""
    from tasks.evaluation.plots import embedding_2d

    started = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(points, dims))
    embedding_2d(x, method="umap", seed=0)
    return time.perf_counter() - started


def main() -> None:
    seconds = compile_umap()
    print(f"UMAP's numba functions compiled and cached ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
