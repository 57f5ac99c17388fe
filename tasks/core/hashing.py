"""Content digests: of files (what a result was computed from) and of source code (the code
that computed it).

Kept free of Prefect and torch so that the lightweight modules (decoding, discovery) can key
their stores with it without importing either.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
from functools import lru_cache
from pathlib import Path
from types import ModuleType

CodeRef = str | ModuleType
"""A module or package, by dotted name (`"tasks.audio.features"`) or as the module object."""


class NotARegularFile(OSError):
    """A path that is a FIFO, device, socket or directory: reading it could block for ever
    (a FIFO with no writer) or never end (`/dev/zero`), so it is refused before any read."""


class FileTooLarge(OSError):
    """A file larger than the size limit given to `file_sha256`."""


def file_kind(mode: int) -> str:
    """What a `st_mode` describes, in words for a one-line reason ("FIFO", "directory"...)."""
    kinds = (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((name for test, name in kinds if test(mode)), "regular file")


def open_regular_file(path: str | Path, *, max_bytes: int | None = None) -> int:
    """A read-only descriptor of `path`, refused unless it is a regular file within `max_bytes`.

    Opened non-blocking and checked with `fstat` on the open descriptor, so a FIFO without a
    writer cannot block the open, and a path swapped between a check and the open cannot slip
    through. The caller closes the descriptor.

    Raises:
        NotARegularFile: a FIFO, device, socket or directory.
        FileTooLarge: the file holds more than `max_bytes` bytes.
        OSError: the file is missing or unreadable.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"not a regular file: a {file_kind(info.st_mode)}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FileTooLarge(
                f"file too large: {info.st_size} bytes, the limit is {max_bytes} bytes "
                "(set max_file_bytes to change)"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def file_sha256(
    path: str | Path, chunk_bytes: int = 1 << 20, *, max_bytes: int | None = None
) -> str:
    """sha256 (64 hex characters) of a regular file's bytes, read in chunks of `chunk_bytes`.

    At most `max_bytes` bytes are read (when given): a file that grows past the limit while it
    is read is refused too.

    Raises:
        NotARegularFile: a FIFO, device, socket or directory (nothing is read from it).
        FileTooLarge: more than `max_bytes` bytes.
        OSError: the file is missing or unreadable.
    """
    digest = hashlib.sha256()
    read = 0
    with open(open_regular_file(path, max_bytes=max_bytes), "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            read += len(chunk)
            if max_bytes is not None and read > max_bytes:
                raise FileTooLarge(
                    f"file too large: more than {max_bytes} bytes (set max_file_bytes to change)"
                )
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
