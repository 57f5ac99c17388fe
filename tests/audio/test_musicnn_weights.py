"""Installing musicnn's weights: our checkpoint reader, the manifest's checks, one-line errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tasks.audio.musicnn_weights import (
    MANIFEST_NAME,
    NETWORKS,
    WeightsInstallError,
    WeightsMissing,
    download_wheel,
    install,
    installed_manifest,
    main,
    read_checkpoint,
    read_tag_names,
    weights_dir,
    weights_path,
)


@pytest.fixture
def installed_copy(tmp_path: Path) -> Path:
    """A copy of the weights `make install` wrote (never modify the real ones)."""
    source = weights_dir()
    copy = tmp_path / "weights"
    copy.mkdir()
    for name in [MANIFEST_NAME, *(f"{n}.safetensors" for n in NETWORKS)]:
        shutil.copy(source / name, copy / name)
    return copy


def test_reconverting_the_cached_wheel_gives_the_installed_files(tmp_path: Path) -> None:
    """The reader is deterministic: same wheel, byte-identical safetensors."""
    wheel = weights_dir() / "wheel" / "musicnn-0.1.0-py3-none-any.whl"  # kept by `make install`
    manifest, changed = install(tmp_path, wheel)
    assert changed
    assert manifest == installed_manifest()
    for network in NETWORKS:
        assert (tmp_path / f"{network}.safetensors").read_bytes() == weights_path(
            network
        ).read_bytes()
    assert manifest.networks["MTT_musicnn"].tag_names[:3] == ["guitar", "classical", "slow"]


def test_a_valid_install_is_left_alone(installed_copy: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in installed_copy.iterdir()}
    _, changed = install(installed_copy)  # no wheel given: downloading would be a bug here
    assert not changed
    assert {p.name: p.stat().st_mtime_ns for p in installed_copy.iterdir()} == before


def test_an_altered_weights_file_is_reported(installed_copy: Path) -> None:
    target = installed_copy / "MSD_musicnn.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsMissing, match=r"does not match its manifest.*make install"):
        installed_manifest(installed_copy)


def test_missing_weights_name_the_folder_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAEMUSIC_WEIGHTS_DIR", str(tmp_path / "nowhere"))
    assert weights_path("MSD_musicnn") == tmp_path / "nowhere" / "MSD_musicnn.safetensors"
    with pytest.raises(WeightsMissing, match=r"not installed at .*nowhere: run `make install`"):
        installed_manifest()


def test_a_corrupt_wheel_is_one_line_and_a_failing_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = tmp_path / "musicnn-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip file")
    assert main(["--wheel", str(wheel), "--dir", str(tmp_path / "w")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "is not the pinned musicnn==0.1.0" in error
    assert "make install" in error
    assert not (tmp_path / "w" / MANIFEST_NAME).exists()


def test_a_failed_download_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pip with no configuration, no cache and an index on a closed local port: fails at once.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(WeightsInstallError, match=r"could not download musicnn==0\.1\.0.*make"):
        download_wheel(tmp_path)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (b"short", "too short"),
        (b"\0" * 48, "bad magic"),
    ],
)
def test_the_reader_refuses_what_is_not_a_checkpoint(index: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_checkpoint(index, b"", {"dense/kernel"})


def test_tag_names_are_read_without_running_the_module() -> None:
    source = (
        "raise SystemExit('executed')\n"
        "MTT_LABELS = ['guitar', 'no vocals']\n"
        "MSD_LABELS = ['rock', 'Hip-Hop']\n"
    )
    assert read_tag_names(source) == {
        "MSD_musicnn": ["rock", "Hip-Hop"],
        "MTT_musicnn": ["guitar", "no vocals"],
    }
