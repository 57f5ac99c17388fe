"""The champion's record survives the registry exactly, and a version without one reads as none."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from registry.champion import ChampionRecord, current_champion, promote
from registry.models import log_model_folder, register_model, set_alias, version_by_alias
from registry.tracking import tracked_run


def _package(folder: Path, weights: str = "{}") -> list[Path]:
    folder.mkdir()
    files = [folder / "model.json", folder / "clustering.json"]
    for path in files:
        path.write_text(weights)
    return files


def _promote(
    folder: Path,
    record: ChampionRecord,
    name: str,
    *,
    tags: dict[str, str] | None = None,
    weights: str = "{}",
) -> str:
    """Promote a package written into `folder` from an evaluation run of its own."""
    with tracked_run("evaluation", folder.name) as run_id:
        return promote(
            run_id=run_id, files=_package(folder, weights), record=record, tags=tags, name=name
        )


def test_a_promoted_champion_reads_back_with_its_exact_objective_value(tmp_path: Path) -> None:
    # Rounding the stored value made an unchanged model look better or worse on its next run.
    record = ChampionRecord(objective="nmi", value=0.123456789012345, fingerprint="data-1")
    version = _promote(
        tmp_path / "package", record, "test-exact-champion", tags={"method": "mlp_vae"}
    )
    assert current_champion("test-exact-champion") == record
    second = _promote(
        tmp_path / "again",
        record.model_copy(update={"value": 0.5}),
        "test-exact-champion",
        weights='{"another": "model"}',
    )
    assert int(second) == int(version) + 1
    assert current_champion("test-exact-champion").value == 0.5


def test_the_same_package_chosen_again_keeps_its_version_with_the_new_record(
    tmp_path: Path,
) -> None:
    # given a champion chosen on NMI
    name = "test-same-champion"
    tags = {"method": "mlp_vae", "features": "default", "algorithm": "kmeans"}
    first = _promote(
        tmp_path / "first",
        ChampionRecord(objective="nmi", value=0.4, fingerprint="data-1"),
        name,
        tags=tags,
    )
    # when a later evaluation ships the same package, chosen on silhouette
    chosen_again = ChampionRecord(objective="silhouette", value=0.25, fingerprint="data-1")
    again = _promote(tmp_path / "again", chosen_again, name, tags=tags)
    # then the registry does not grow, and the version says what it was chosen on now
    assert again == first
    assert current_champion(name) == chosen_again
    version = version_by_alias(name)
    assert version.description == "mlp_vae [default] + kmeans; silhouette = 0.2500 on data data-1"


def test_no_champion_and_a_champion_without_a_record_both_read_as_none(tmp_path: Path) -> None:
    assert current_champion("test-never-registered") is None
    with tracked_run("evaluation", "by hand") as run_id:
        uri = log_model_folder(run_id, _package(tmp_path / "package"), name="champion")
    version = register_model(uri, "test-untagged-champion")
    set_alias("test-untagged-champion", "champion", version)
    assert current_champion("test-untagged-champion") is None


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_record_needs_a_finite_value(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        ChampionRecord(objective="nmi", value=value, fingerprint="data")


def test_tags_of_an_older_version_still_read() -> None:
    tags = {"objective": "silhouette", "objective_value": "0.412346", "fingerprint": "abc"}
    assert ChampionRecord.from_tags(tags) == ChampionRecord(
        objective="silhouette", value=0.412346, fingerprint="abc"
    )
