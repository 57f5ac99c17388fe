"""Files replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.core.atomic import replaced_atomically
from tasks.core.workdir_lock import PARTIAL_FILE


def test_the_file_appears_whole_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "store" / "x.npz"
    target.parent.mkdir()
    with replaced_atomically(target) as tmp:
        np.savez(tmp, a=np.arange(3))
        assert tmp.exists()  # np.savez kept the name: it already ends in .npz
        assert not target.exists()
        assert PARTIAL_FILE.search(tmp.name)  # the work-dir lock would clear it after a kill
    with np.load(target) as data:
        assert data["a"].tolist() == [0, 1, 2]
    assert list(target.parent.iterdir()) == [target]


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")

    def write_half() -> None:
        with replaced_atomically(target) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_half()
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
