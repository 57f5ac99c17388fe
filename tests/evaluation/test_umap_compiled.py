"""UMAP's numba functions are cached on disk, so a new process does not compile them again."""

from __future__ import annotations

import subprocess
import sys

from numba.core.caching import FunctionCache

from tasks.evaluation.umap_compiled import compile_umap, load_umap


def test_load_umap_turns_the_cache_on_for_umaps_numba_functions():
    load_umap()
    from umap import layouts, umap_

    for function in (
        umap_.smooth_knn_dist,
        umap_.compute_membership_strengths,
        layouts._nb_optimize_layout_euclidean_single_epoch,
    ):
        assert isinstance(function._cache, FunctionCache), function


def test_a_new_process_draws_a_map_from_the_cache():
    """After one compilation (here or at `make install`), a fresh interpreter draws a small map
    without compiling: its compiled signatures come from the cache files."""
    compile_umap(points=40, dims=4)
    script = (
        "from tasks.evaluation.umap_compiled import compile_umap, load_umap\n"
        "compile_umap(points=40, dims=4)\n"
        "umap = load_umap()\n"
        "stats = umap.umap_.smooth_knn_dist.stats\n"
        "print(stats.cache_hits and sum(stats.cache_hits.values()), "
        "sum(stats.cache_misses.values()))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    hits, misses = int(output[-2]), int(output[-1])
    assert hits >= 1
    assert misses == 0
