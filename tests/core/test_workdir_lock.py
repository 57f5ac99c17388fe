"""One command at a time in a work dir (real processes, real flock), and the partial files of a
failed run removed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.core.workdir_lock import LOCK_FILE, holding_workdir

HOLDER = """
import sys
from pathlib import Path
from tasks.core.workdir_lock import holding_workdir

with holding_workdir(Path(sys.argv[1]), command=sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def start_holder(
    workdir: Path, command: str = "flows run songs --workdir w"
) -> subprocess.Popen[str]:
    """Another process that holds `workdir` (as `command`) until its stdin is closed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workdir), command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_second_holder_waits_saying_who_holds_the_work_dir(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    holder = start_holder(workdir)
    said: list[str] = []
    released_at = []

    def release() -> None:
        released_at.append(time.monotonic())
        holder.stdin.close()  # the first command ends ...

    def release_soon(line: str) -> None:
        said.append(line)
        threading.Timer(0.5, release).start()

    with holding_workdir(workdir, command="flows evaluate", say=release_soon) as lock:
        acquired_at = time.monotonic()  # ... and only then does the second one go on
        assert lock.root == workdir.resolve()
    assert holder.wait(timeout=30) == 0
    assert len(said) == 1
    assert said[0].startswith(f"waiting for the work dir {workdir.resolve()}: in use by pid ")
    assert f"pid {holder.pid} (flows run songs --workdir w, since " in said[0]
    assert acquired_at >= released_at[0]


def test_a_free_work_dir_is_taken_at_once_and_a_dead_holder_never_blocks(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    holder = start_holder(workdir)
    holder.kill()  # kill -9: no exit hook ran, the lock file stays with its record
    holder.wait(timeout=30)
    assert (workdir / LOCK_FILE).exists()

    def must_not_wait(line: str) -> None:
        raise AssertionError(f"waited: {line}")

    with holding_workdir(workdir, say=must_not_wait):
        pass
    with holding_workdir(tmp_path / "new" / "work", say=must_not_wait) as lock:
        assert lock.root.is_dir()


def test_a_failed_run_leaves_no_partial_file_it_wrote(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    store = workdir / "store"
    store.mkdir(parents=True)
    older = store / "left-by-another-run.tmp.npz"
    older.write_bytes(b"x")
    old_time = time.time() - 3600
    os.utime(older, (old_time, old_time))
    finished = store / "features.npz"

    def run_that_fails() -> None:
        with holding_workdir(workdir):
            finished.write_bytes(b"done")
            (store / "abc.tmp.npz").write_bytes(b"half")
            (workdir / "tracks.tmp").write_bytes(b"half")
            (workdir / "tmpq1w2e3.tmp").write_bytes(b"half")  # tempfile's name
            (workdir / "notes.tmpl").write_bytes(b"a user's file")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_that_fails()

    left = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file())
    assert left == [
        LOCK_FILE,
        "notes.tmpl",
        "store/features.npz",
        "store/left-by-another-run.tmp.npz",
    ]
