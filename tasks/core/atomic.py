"""Files written whole or not at all: the one way the project replaces a file on disk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (`<stem>.tmp<suffix>`, so writers that add a suffix such
    as `np.savez` keep it) to write to; moved over `path` when the block ends, removed when it
    raises. A killed run never leaves half a file under the final name, and what it leaves is
    named `*.tmp*`, which the work-dir lock clears (`tasks.core.workdir_lock`)."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
