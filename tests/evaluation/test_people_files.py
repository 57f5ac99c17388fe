"""Which model the people's files (clusters.csv, playlists, clusters.md, map) describe after the
champion was decided, and that stale ones go when no model describes the collection."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from prefect.logging import disable_run_logger

from registry.champion import ChampionRecord
from tasks.core.workspace import Workspace
from tasks.evaluation import people_files
from tasks.evaluation.clusters import CLUSTER_TABLE_SCHEMA, write_clusters_summary, write_playlists
from tasks.evaluation.people_files import champion_clusters_source, remove_people_files
from tests.evaluation.test_clusters import _fit, collection  # noqa: F401 (a fixture)

THIS_DATA = "fingerprint-now"


def _record(fingerprint: str) -> ChampionRecord:
    return ChampionRecord(objective="nmi", value=0.5, fingerprint=fingerprint)


@pytest.mark.parametrize(
    ("promoted", "has_candidate", "registered", "expected"),
    [
        (True, True, _record(THIS_DATA), "candidate"),  # promoted this run
        (False, True, None, "candidate"),  # none registered (promotion turned off)
        (False, True, _record(THIS_DATA), "registered"),  # kept: the champion is the better one
        (False, False, _record(THIS_DATA), "registered"),  # no candidate, champion of this data
        (False, True, _record("other data"), "candidate"),  # its reference lacks these tracks
        (False, False, _record("other data"), "none"),
        (False, False, None, "none"),
    ],
)
def test_the_people_files_describe_the_champion_of_this_collection(
    promoted: bool, has_candidate: bool, registered: ChampionRecord | None, expected: str
) -> None:
    assert (
        champion_clusters_source(
            promoted=promoted,
            has_candidate=has_candidate,
            registered=registered,
            fingerprint=THIS_DATA,
        )
        == expected
    )


def test_stale_people_files_are_removed_and_other_reports_kept(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "work")
    stale = [
        workspace.clusters_table,
        workspace.clusters_table.with_suffix(".parquet"),
        workspace.clusters_summary,
        workspace.listening_map,
        workspace.playlist(0),
        workspace.playlist(3),
    ]
    for path in stale:
        path.write_text("old")
    comparison = workspace.reports / "comparison.csv"
    comparison.write_text("kept")

    remove_people_files(workspace)

    assert not any(path.exists() for path in stale)
    assert comparison.read_text() == "kept"


def test_the_candidates_clusters_csv_is_written_once_it_is_the_champion(
    collection,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace, _, _ = collection
    candidate = _fit(collection)
    assert not workspace.clusters_table.exists()  # not before the decision
    monkeypatch.setattr(people_files, "version_by_alias", lambda *_: None)  # none registered
    # The nested tasks run as plain functions: no Prefect server for a unit test.
    monkeypatch.setattr(people_files, "write_playlists", write_playlists.fn)
    monkeypatch.setattr(people_files, "write_clusters_summary", write_clusters_summary.fn)

    with disable_run_logger():
        people = people_files.write_champion_clusters.fn(
            candidate, promoted=True, fingerprint="f", workspace=workspace, map_method=None
        )

    assert people.clustering == candidate
    table = pl.read_csv(workspace.clusters_table, schema_overrides=CLUSTER_TABLE_SCHEMA)
    assert table.equals(candidate.read())
    assert workspace.clusters_summary.is_file()
    assert workspace.playlist(0).is_file()
