"""One cache mechanism: the source digest of the code a result depends on keys Prefect's cache
and the on-disk stores alike."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.cache_policies import INPUTS, Inputs

from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.core import hashing
from tasks.core.caching import CodeSource, cached_on, run_with_outputs
from tasks.core.hashing import code_digest


@pytest.fixture
def scratch_package(tmp_path: Path) -> Iterator[Path]:
    """An importable package `scratch_code` with one module, removed again afterwards."""
    package = tmp_path / "scratch_code"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text("def step():\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    yield package
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("scratch_code")]:
        del sys.modules[name]
    hashing.source_files.cache_clear()
    hashing._digest_of_names.cache_clear()


def _fresh_digest(*modules: str) -> str:
    hashing._digest_of_names.cache_clear()
    return code_digest(*modules)


def test_editing_a_module_changes_its_digest_and_its_package_digest(scratch_package: Path):
    module, package = _fresh_digest("scratch_code.steps"), _fresh_digest("scratch_code")
    (scratch_package / "steps.py").write_text("def step():\n    return 2\n")
    assert _fresh_digest("scratch_code.steps") != module
    assert _fresh_digest("scratch_code") != package


def test_renaming_a_file_of_a_package_changes_its_digest(scratch_package: Path) -> None:
    before = _fresh_digest("scratch_code")
    (scratch_package / "steps.py").rename(scratch_package / "stages.py")
    hashing.source_files.cache_clear()
    assert _fresh_digest("scratch_code") != before


def test_a_module_object_and_its_name_give_the_same_digest() -> None:
    import tasks.audio.decoding as decoding

    assert code_digest(decoding) == code_digest("tasks.audio.decoding")
    assert len(code_digest(decoding)) == 64


@pytest.mark.parametrize("name", ["tasks.audio.no_such_module", "no_such_package.steps", "sys"])
def test_a_cache_policy_naming_a_missing_module_fails_when_it_is_built(name: str) -> None:
    # Before, the name was only imported while Prefect computed a key: Prefect logs that error
    # and stops caching the task, so a renamed module silently dropped out of the key.
    with pytest.raises(ModuleNotFoundError, match=name):
        cached_on(name)


def test_cached_on_keys_on_the_named_code_and_the_inputs_but_not_the_excluded_ones(
    fake_sources,
) -> None:
    import tasks.audio.features as features

    policy = cached_on("tasks.audio.decoding", features, exclude=("workers",))
    code = next(p for p in policy.policies if isinstance(p, CodeSource))
    inputs = next(p for p in policy.policies if isinstance(p, Inputs))

    def input_key(paths: list[str], workers: int) -> str | None:
        return inputs.compute_key(None, {"paths": paths, "workers": workers}, {})

    before = code.compute_key(None, {}, {})
    fake_sources["tasks.audio.features"] = 1  # a module given as an object counts too
    assert code.compute_key(None, {}, {}) != before
    assert input_key(["a.wav"], 1) == input_key(["a.wav"], 8)
    assert input_key(["a.wav"], 1) != input_key(["b.wav"], 1)


def test_the_code_digest_reads_the_sources_once_per_process(
    scratch_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Store keys are computed per file during ingest: reading the sources each time would make
    # every key a disk read of whole packages.
    reads: list[Path] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    first = _fresh_digest("scratch_code")
    assert [code_digest("scratch_code") for _ in range(3)] == [first] * 3
    assert len(reads) == 2  # __init__.py and steps.py, once


@pytest.fixture
def fake_sources(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Pretend source versions: bumping a module's entry is editing that module."""
    versions: dict[str, int] = {}

    def digest(names: tuple[str, ...]) -> str:
        return "|".join(f"{name}:{versions.get(name, 0)}" for name in names)

    monkeypatch.setattr(hashing, "_digest_of_names", digest)
    return versions


def test_editing_the_feature_code_moves_features_to_a_new_store(fake_sources) -> None:
    before = FeatureConfig().key
    fake_sources["tasks.audio.features"] = 1
    assert FeatureConfig().key != before


def test_editing_the_decoding_code_moves_validation_and_features_to_new_stores(
    fake_sources,
) -> None:
    # Features are computed from the decoded audio: a changed resampler changes them too (the
    # old integer version of the feature store ignored the decoding code).
    features, audio = FeatureConfig().key, AudioConfig().key
    fake_sources["tasks.audio.decoding"] = 1
    assert FeatureConfig().key != features
    assert AudioConfig().key != audio


def test_unrelated_code_leaves_the_store_keys_alone(fake_sources) -> None:
    features, audio = FeatureConfig().key, AudioConfig().key
    fake_sources["tasks.lyrics"] = 1
    assert (FeatureConfig().key, AudioConfig().key) == (features, audio)


def test_a_cached_result_whose_file_was_deleted_is_computed_again(
    prefect_api, tmp_path: Path
) -> None:
    calls: list[Path] = []

    @task(cache_policy=INPUTS, persist_result=True)
    def write_note(path: Path) -> Path:
        calls.append(path)
        path.write_text("note")
        return path

    @flow
    def notes(path: Path) -> bool:
        return run_with_outputs(write_note, path, outputs=lambda p: [p]).from_cache

    target = tmp_path / "note.txt"
    assert notes(target) is False
    assert notes(target) is True  # unchanged inputs, file still there: served from the cache
    target.unlink()
    assert notes(target) is False
    assert target.read_text() == "note"
    assert len(calls) == 2
