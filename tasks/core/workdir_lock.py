"""One command at a time in a work dir, and no partial files left by one that failed.

Two commands writing one work dir would both train every model and register duplicate versions
(each sees the other's work as not done yet). A command that writes a work dir holds an exclusive
`flock` on `<workdir>/.lock` for its whole life; a second command waits for it, after saying in
one line who holds it (pid, command, since when). Waiting rather than failing: the second
command then finds the first one's work cached and redoes none of it, which is what a user who
started it wanted. The kernel drops the lock when its holder dies, even by kill -9, so a lock is
never stale; the holder's description in the file is only informative.

Writers put a file in place by writing `<name>.tmp...` and renaming it; a run that stops half way
(disk full, SIGTERM) leaves those behind. `WorkdirLock.remove_partial_files` removes the ones
this run wrote, which only the lock's holder can do safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".lock"
# What our writers name a file before its rename: `x.tmp`, `x.tmp.npz`, tempfile's `tmpab12.tmp`.
PARTIAL_FILE = re.compile(r"\.tmp(\.[^.]+)?$")
# File times on some filesystems have a 1-2 s resolution: a partial file this run wrote may carry
# a time slightly before the run took the lock.
_MTIME_SLACK_S = 2.0

_held: list[WorkdirLock] = []


@dataclass(frozen=True)
class WorkdirLock:
    """The lock on `root` this process holds; `since`: when it took it (time.time())."""

    root: Path
    since: float

    def remove_partial_files(self) -> list[Path]:
        """Remove the `*.tmp*` files under `root` written since the lock was taken; returns them.

        Older ones are left alone: they may belong to a run (a `serve` deployment) that writes
        without the command line's lock.
        """
        removed = []
        for path in self.root.rglob("*.tmp*"):
            with contextlib.suppress(FileNotFoundError):  # renamed into place meanwhile
                if (
                    PARTIAL_FILE.search(path.name)
                    and path.is_file()
                    and path.stat().st_mtime >= self.since - _MTIME_SLACK_S
                ):
                    path.unlink()
                    removed.append(path)
        return removed


def command_line() -> str:
    """This process's command as a user typed it (`flows run --workdir w`), for the lock file."""
    return shlex.join(["flows", *sys.argv[1:]])


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def holding_workdir(
    root: Path, *, command: str | None = None, say: Callable[[str], None] = _say_on_stderr
) -> Iterator[WorkdirLock]:
    """Hold the work dir `root` (created if missing) for the body; wait while another holds it.

    While waiting, `say` is called once with a line naming the holder. When the body raises
    (a failure, an interrupt), the partial files it wrote are removed before the lock is given up.
    """
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    lock = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(
                f"waiting for the work dir {root}: in use by {_holder(fd)}; this command "
                "continues when that one ends (Ctrl-C to give up)"
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        lock = WorkdirLock(root=root, since=time.time())
        record = {"pid": os.getpid(), "command": command or command_line(), "since": lock.since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        _held.append(lock)
        yield lock
    except BaseException:
        if lock is not None:
            lock.remove_partial_files()
        raise
    finally:
        if lock is not None:
            _held.remove(lock)
        os.close(fd)  # releases the lock


def remove_partial_files_of_held_locks() -> None:
    """For a process about to end abruptly (`os._exit` after SIGTERM): remove the partial files
    of every work dir it holds; the kernel releases the locks themselves."""
    for lock in list(_held):
        with contextlib.suppress(OSError):
            lock.remove_partial_files()


def _holder(fd: int) -> str:
    """`pid 123 (flows run --workdir w, since 14:02:11)` from the lock file, as far as known."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["since"]))
        return f"pid {record['pid']} ({record['command']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):  # written at this very moment
        return "another command"
