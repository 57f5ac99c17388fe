"""Content digests: of files (what a result was computed from) and of source code (the code
that computed it).

Kept free of Prefect and torch so that the lightweight modules (decoding, discovery) can key
their stores with it without importing either.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType

CodeRef = str | ModuleType
"""A module or package, by dotted name (`"tasks.audio.features"`) or as the module object."""


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 (64 hex characters) of a file's bytes, read in chunks of `chunk_bytes`.

    Raises:
        OSError: the file is missing or unreadable.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def module_name(module: CodeRef) -> str:
    return module if isinstance(module, str) else module.__name__


@lru_cache(maxsize=64)
def source_files(name: str) -> tuple[tuple[str, Path], ...]:
    """(name relative to the module's folder, path) of every source file of module `name`.

    A package contributes every .py file below it, a module its own file. Resolved from the
    import system's spec without importing the module, so a module may name itself while it is
    being imported.

    Raises:
        ModuleNotFoundError: no module `name` exists (a renamed module must not drop out of a
            digest unnoticed).
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise ModuleNotFoundError(f"code digest names module {name!r}: {error}") from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ModuleNotFoundError(
            f"code digest names module {name!r}, which is not a Python source module: fix the "
            "name given to cached_on(...) or code_digest(...)"
        )
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: all of its files
        root = origin.parent
        return tuple(
            (path.relative_to(root).as_posix(), path) for path in sorted(root.rglob("*.py"))
        )
    return ((origin.name, origin),)


@lru_cache(maxsize=64)
def _digest_of_names(names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        for relative, path in source_files(name):
            digest.update(f"{name}/{relative}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def code_digest(*modules: CodeRef) -> str:
    """sha256 (64 hex characters) of the source of `modules` (packages: every file below them).

    The one code-version mechanism: Prefect's cache policy (`tasks.core.caching.cached_on`) and
    the keys of the on-disk stores both use it. Any edit counts, comments included: a false miss
    costs a recomputation, a false hit silently serves numbers of the old code. Computed once per
    process: a long-running server keeps the digest of the code it loaded, which is the code it
    runs.

    Raises:
        ModuleNotFoundError: a module name does not exist.
    """
    return _digest_of_names(tuple(module_name(module) for module in modules))
