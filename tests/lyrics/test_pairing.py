"""Reading lyrics sources, pairing them with tracks, and the lyrics table."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tasks.core.workspace import Workspace
from tasks.demo import generate_demo_dataset
from tasks.lyrics.pairing import PairingSettings, consonant_skeleton, pair_lyrics
from tasks.lyrics.sources import (
    LyricsDocument,
    LyricsSourceError,
    discover_lyrics_sources,
    parse_lyrics_text,
    read_lyrics_file,
    read_lyrics_sources,
    read_lyrics_table,
)
from tasks.lyrics.table import LYRICS_SCHEMA, build_lyrics_table

TRACKS = [
    # track_id, title, artist, status
    ("rock.00000", "Wild Path", "Emma Carter", "ok"),
    ("rock.00001", "Amar Sonar Bangla", "Rahim Das", "ok"),
    ("jazz.00000", "Dil Ki Baat", "Kabir Verma", "ok"),
    ("jazz.00001", "Quiet Room", "Nora Lane", "ok"),  # no lyrics anywhere
    ("jazz.00002", "Tomake Chai", "Shuvo Roy", "ok"),
    ("jazz.00003", "Empty Page", "Nora Lane", "ok"),  # empty lyrics file
    ("pop.00000", "Night Song", "Ava Hill", "ok"),
    ("pop.00001", "Night Songs", "Ava Hill", "ok"),  # too close to pop.00000 for a fuzzy name
    ("rock.00009", "Broken", "Emma Carter", "quarantined"),
]

LYRICS_FILES = {
    "rock.00000.txt": "[Verse 1]\nWe were dancing in the summer rain\n\n[Chorus]\nHold me close\n",
    # Bengali-script file name, romanized metadata: cross-script fuzzy pairing
    "রহিম দাস - আমার সোনার বাংলা.txt": "আমার সোনার বাংলা\nআমি তোমায় ভালোবাসি\n",
    "jazz.00000.lrc": (
        "[ti:Dil Ki Baat]\n[ar:Kabir Verma]\n[offset:+500]\n"
        "[00:12.50]दिल क्या करे\n[00:20.00][01:05.00]मैं तुमसे प्यार करता हूँ\n"
    ),
    "jazz.00003.txt": "",
    # an orphan: no track has this name
    "Unknown Band - Far Away Places.txt": "far away places calling me\n",
    # a second file for rock.00000, by a less certain method: loses the conflict
    "Emma Carter - Wild Path.txt": "another version of the song\n",
    # ambiguous: "Night Song" and "Night Songs" by the same artist
    "Ava Hill - Night Song.txt": "the night is young and so are we\n",
    # names a quarantined track
    "rock.00009.txt": "broken glass\n",
}


def _tracks(data: Path) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "track_id": [t[0] for t in TRACKS],
            "path": [str(data / "audio" / f"{t[0]}.wav") for t in TRACKS],
            "title": [t[1] for t in TRACKS],
            "artist": [t[2] for t in TRACKS],
            "lyrics_path": [None] * len(TRACKS),
            "status": [t[3] for t in TRACKS],
        },
        schema={
            "track_id": pl.String,
            "path": pl.String,
            "title": pl.String,
            "artist": pl.String,
            "lyrics_path": pl.String,
            "status": pl.String,
        },
    )


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """DATA/lyrics/ with the files above and DATA/metadata.csv with a lyrics column for one."""
    data = tmp_path / "data"
    (data / "lyrics").mkdir(parents=True)
    for name, text in LYRICS_FILES.items():
        (data / "lyrics" / name).write_text(text, encoding="utf-8")
    pl.DataFrame(
        {
            "track_id": ["jazz.00002"],
            "title": ["Tomake Chai"],
            "lyrics": ["ami tomake chai\ntumi amar mon"],
        }
    ).write_csv(data / "metadata.csv")
    return data


@pytest.fixture
def workspace(tmp_path: Path, collection: Path) -> Workspace:
    workspace = Workspace.open(tmp_path / "work")
    _tracks(collection).write_parquet(workspace.tracks_table)
    return workspace


# ---------------------------------------------------------------------------------------------
# sources


def test_lrc_times_tags_and_repeats() -> None:
    text = (
        "[ar:Someone]\n[ti:A Song]\n[offset:+500]\n"
        "[00:20.00][01:05.00]chorus line\n[00:12.50]first <00:13.00>word\nuntimed"
    )
    lines, times, tags = parse_lyrics_text(text)
    assert lines == ["first word", "chorus line", "chorus line", "untimed"]
    assert times == [12.0, 19.5, 64.5, None]
    assert tags == {"ar": "Someone", "ti": "A Song", "offset": "+500"}


def test_plain_text_has_no_times() -> None:
    lines, times, tags = parse_lyrics_text("one\r\ntwo")
    assert (lines, times, tags) == (["one", "two"], [None, None], {})


def test_lrc_file_gives_title_and_artist(collection: Path) -> None:
    document = read_lyrics_file(collection / "lyrics" / "jazz.00000.lrc")
    assert (document.title, document.artist, document.stem) == (
        "Dil Ki Baat",
        "Kabir Verma",
        "jazz.00000",
    )
    assert document.lines == ("दिल क्या करे", "मैं तुमसे प्यार करता हूँ", "मैं तुमसे प्यार करता हूँ")


def test_csv_table_with_text_and_path_columns(tmp_path: Path) -> None:
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "b.lrc").write_text("[00:01.00]hello there\n", encoding="utf-8")
    table = tmp_path / "lyrics.csv"
    pl.DataFrame(
        {
            "track_id": ["a", None, None],
            "title": [None, "Some Title", None],
            "artist": [None, "Some Artist", None],
            "lyrics_text": ["line one\nline two", None, None],
            "lyrics_path": [None, "songs/b.lrc", None],
        }
    ).write_csv(table)
    documents = read_lyrics_table(table)
    assert len(documents) == 2  # the third row has neither text nor path
    first, second = documents
    assert first.source == f"{table.resolve()}#row=0"
    assert (first.track_id, first.lines) == ("a", ("line one", "line two"))
    assert second.source == str((tmp_path / "songs" / "b.lrc").resolve())
    assert (second.title, second.artist, second.line_times_s) == (
        "Some Title",
        "Some Artist",
        (1.0,),
    )


def test_table_without_lyrics_column_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    pl.DataFrame({"track_id": ["a"], "genre": ["rock"]}).write_csv(table)
    with pytest.raises(LyricsSourceError, match="no lyrics column"):
        read_lyrics_table(table)
    with pytest.raises(LyricsSourceError, match="no lyrics column"):
        discover_lyrics_sources(tmp_path, table, tmp_path / "tracks.parquet")


def test_missing_lyrics_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LyricsSourceError, match="no such file or folder"):
        discover_lyrics_sources(tmp_path, tmp_path / "nope", tmp_path / "tracks.parquet")


def test_discovery_finds_folder_and_manifest_column(collection: Path, workspace: Workspace) -> None:
    sources = discover_lyrics_sources(collection, None, workspace.tracks_table)
    assert sources.folders == ((collection / "lyrics").resolve(),)
    assert sources.tables == ((collection / "metadata.csv").resolve(),)
    documents = read_lyrics_sources(sources)
    assert len(documents) == len(LYRICS_FILES) + 1
    # the fingerprint follows the content
    (collection / "lyrics" / "rock.00000.txt").write_text("changed", encoding="utf-8")
    again = discover_lyrics_sources(collection, None, workspace.tracks_table)
    assert again.fingerprint != sources.fingerprint


def test_explicit_lyrics_replaces_discovery(collection: Path, workspace: Workspace) -> None:
    sources = discover_lyrics_sources(
        collection, collection / "lyrics" / "jazz.00000.lrc", workspace.tracks_table
    )
    assert sources.folders == ()
    assert sources.tables == ()
    assert [p.name for p in sources.files] == ["jazz.00000.lrc"]


def test_no_lyrics_anywhere_is_allowed(tmp_path: Path) -> None:
    sources = discover_lyrics_sources(tmp_path, None, tmp_path / "tracks.parquet")
    assert sources.empty
    assert read_lyrics_sources(sources) == []


# ---------------------------------------------------------------------------------------------
# pairing


def _doc(source: str, *, stem: str | None = None, **names: str) -> LyricsDocument:
    return LyricsDocument(source=source, lines=("la",), line_times_s=(None,), stem=stem, **names)


def test_pairing_methods_and_reasons(collection: Path) -> None:
    documents = read_lyrics_sources(discover_lyrics_sources(collection, None, Path("none")))
    result = pair_lyrics(documents, _tracks(collection), PairingSettings(), data_root=collection)
    by_track = {
        tid: (Path(documents[p.document_index].source).name, p.method, p.score)
        for tid, p in result.pairs.items()
    }
    assert by_track["rock.00000"] == ("rock.00000.txt", "file_stem", 100.0)
    assert by_track["jazz.00000"] == ("jazz.00000.lrc", "file_stem", 100.0)
    assert by_track["jazz.00003"] == ("jazz.00003.txt", "file_stem", 100.0)
    assert by_track["jazz.00002"][1:] == ("track_id", 100.0)
    name, method, score = by_track["rock.00001"]
    assert (name, method) == ("রহিম দাস - আমার সোনার বাংলা.txt", "fuzzy")
    assert score >= 95
    assert "jazz.00001" not in result.pairs
    assert "pop.00000" not in result.pairs
    assert "pop.00001" not in result.pairs
    assert "rock.00009" not in result.pairs

    unpaired = {Path(documents[u.document_index].source).name: u for u in result.unpaired}
    assert set(unpaired) == {
        "Unknown Band - Far Away Places.txt",
        "Emma Carter - Wild Path.txt",
        "Ava Hill - Night Song.txt",
        "rock.00009.txt",
    }
    assert unpaired["Unknown Band - Far Away Places.txt"].reason == "low_score"
    assert unpaired["Unknown Band - Far Away Places.txt"].best_score < 80
    conflict = unpaired["Emma Carter - Wild Path.txt"]
    assert (conflict.reason, conflict.best_track_id) == ("conflict", "rock.00000")
    assert "rock.00000.txt" in conflict.detail
    ambiguous = unpaired["Ava Hill - Night Song.txt"]
    assert ambiguous.reason == "ambiguous"
    assert {ambiguous.best_track_id, ambiguous.second_track_id} == {"pop.00000", "pop.00001"}
    assert unpaired["rock.00009.txt"].reason == "track_quarantined"
    assert result.method_counts() == {"manifest": 0, "track_id": 1, "file_stem": 3, "fuzzy": 1}


def test_manifest_link_beats_file_name(tmp_path: Path) -> None:
    lyrics = tmp_path / "x.txt"
    lyrics.write_text("words")
    tracks = _tracks(tmp_path).with_columns(
        pl.when(pl.col("track_id") == "jazz.00001")
        .then(pl.lit("x.txt"))
        .otherwise(pl.col("lyrics_path"))
        .alias("lyrics_path")
    )
    documents = [_doc(str(lyrics.resolve()), stem="rock.00000")]
    result = pair_lyrics(documents, tracks, PairingSettings(), data_root=tmp_path)
    assert list(result.pairs) == ["jazz.00001"]
    assert result.pairs["jazz.00001"].method == "manifest"


def test_track_gets_at_most_one_document_most_certain_wins(tmp_path: Path) -> None:
    documents = [
        _doc("fuzzy.txt", title="Wild Path", artist="Emma Carter"),
        _doc("table#row=0", track_id="rock.00000"),
        _doc("stem.txt", stem="ROCK.00000"),
    ]
    result = pair_lyrics(documents, _tracks(tmp_path), PairingSettings())
    assert result.pairs["rock.00000"].document_index == 1  # track_id beats file stem and fuzzy
    assert [(u.document_index, u.reason) for u in result.unpaired] == [
        (0, "conflict"),
        (2, "conflict"),
    ]


def test_unknown_track_id_without_names(tmp_path: Path) -> None:
    result = pair_lyrics([_doc("t#row=0", track_id="nope")], _tracks(tmp_path), PairingSettings())
    assert result.pairs == {}
    assert result.unpaired[0].reason == "unknown_track_id"


def test_stricter_settings_leave_more_unpaired(tmp_path: Path) -> None:
    documents = [_doc("a.txt", stem="Emma Cartr - Wild Pth")]
    tracks = _tracks(tmp_path)
    assert pair_lyrics(documents, tracks, PairingSettings()).pairs["rock.00000"].method == "fuzzy"
    strict = pair_lyrics(documents, tracks, PairingSettings(min_score=99))
    assert strict.pairs == {}
    assert strict.unpaired[0].reason == "low_score"


# ---------------------------------------------------------------------------------------------
# the lyrics table


def test_lyrics_table_has_a_row_per_ok_track(collection: Path, workspace: Workspace) -> None:
    sources = discover_lyrics_sources(collection, None, workspace.tracks_table)
    summary = build_lyrics_table.fn(workspace, "sha", sources, PairingSettings(), collection)

    table = pl.read_parquet(workspace.lyrics_table)
    assert dict(table.schema) == LYRICS_SCHEMA
    ok_ids = [t[0] for t in TRACKS if t[3] == "ok"]
    assert table["track_id"].to_list() == ok_ids
    rows = {row["track_id"]: row for row in table.iter_rows(named=True)}

    wild = rows["rock.00000"]
    assert wild["text"] == "We were dancing in the summer rain\nHold me close"  # tags gone
    assert (wild["language"], wild["script"], wild["has_lyrics"]) == ("en", "Latn", True)

    bangla = rows["rock.00001"]
    assert (bangla["language"], bangla["script"], bangla["romanized"]) == ("bn", "Beng", False)
    assert bangla["text_romanized"] == "amar sonar bangla\nami tomay bhalobasi"
    assert bangla["pair_method"] == "fuzzy"

    hindi = rows["jazz.00000"]
    assert hindi["language"] == "hi"
    assert hindi["line_times_s"] == [12.0, 19.5, 64.5]
    assert hindi["line_languages"] == ["hi", "hi", "hi"]

    banglish = rows["jazz.00002"]
    assert (banglish["language"], banglish["script"], banglish["romanized"]) == ("bn", "Latn", True)
    assert json.loads(banglish["language_mix"]) == {"bn": 1.0}
    assert banglish["lyrics_path"].endswith("metadata.csv#row=0")

    for missing in ("jazz.00001", "pop.00000", "pop.00001"):
        row = rows[missing]
        assert (row["has_lyrics"], row["language"], row["text"], row["pair_method"]) == (
            False,
            None,
            None,
            None,
        )
    empty = rows["jazz.00003"]
    assert (empty["has_lyrics"], empty["text"], empty["language"]) == (False, "", None)
    assert empty["pair_method"] == "file_stem"

    unpaired = pl.read_csv(workspace.unpaired_lyrics)
    assert sorted(unpaired["reason"].to_list()) == [
        "ambiguous",
        "conflict",
        "low_score",
        "track_quarantined",
    ]
    assert summary.n_tracks == len(ok_ids)
    assert summary.n_with_lyrics == 4
    assert summary.languages == {"none": 4, "en": 1, "bn": 2, "hi": 1} | summary.languages


# ---------------------------------------------------------------------------------------------
# the demo collection (generated by tasks.demo)


def test_demo_collection_pairs_every_lyrics_file_and_finds_languages(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    generate_demo_dataset(data, tracks=40, seed=3, duration_s=6.0)
    metadata = pl.read_csv(data / "metadata.csv")
    audio = {p.stem: str(p) for p in (data / "genres_original").rglob("*.wav")}
    tracks = metadata.select(
        "track_id",
        "title",
        "artist",
        pl.col("track_id").replace_strict(audio).alias("path"),
        pl.lit(None, pl.String).alias("lyrics_path"),
        pl.lit("ok").alias("status"),
    )
    workspace = Workspace.open(tmp_path / "work")
    tracks.write_parquet(workspace.tracks_table)
    sources = discover_lyrics_sources(data, None, workspace.tracks_table)
    build_lyrics_table.fn(workspace, "sha", sources, PairingSettings(), data)

    lyrics = pl.read_parquet(workspace.lyrics_table)
    truth = pl.read_csv(data / "lyrics_truth.csv", schema_overrides={"track_id": pl.String})
    paired = {
        Path(path).name: tid
        for tid, path in lyrics.select("track_id", "lyrics_path").iter_rows()
        if path is not None
    }
    expected = {f: t for f, t in truth.iter_rows() if t}
    orphans = {f for f, t in truth.iter_rows() if not t}
    assert paired == expected  # every lyrics file paired, with the right track
    assert (
        set(
            pl.read_csv(workspace.unpaired_lyrics)["lyrics_path"].map_elements(
                lambda p: Path(p).name, return_dtype=pl.String
            )
        )
        == orphans
    )

    joined = lyrics.join(metadata, on="track_id", suffix="_truth")
    assert (joined["has_lyrics"] == joined["has_lyrics_truth"]).all()
    with_lyrics = joined.filter(pl.col("has_lyrics"))
    accuracy = (with_lyrics["language"] == with_lyrics["language_truth"]).mean()
    assert accuracy >= 0.95
    assert (with_lyrics["romanized"] == with_lyrics["romanized_truth"]).mean() >= 0.95
    assert (with_lyrics["script"] == with_lyrics["script_truth"]).mean() >= 0.95


# ---------------------------------------------------------------------------------------------
# names across scripts


def _named_tracks(names: list[tuple[str, str, str]]) -> pl.DataFrame:
    """Tracks (track_id, title, artist), all ok, without audio paths or manifest links."""
    return pl.DataFrame(
        {
            "track_id": [n[0] for n in names],
            "path": [None] * len(names),
            "title": [n[1] for n in names],
            "artist": [n[2] for n in names],
            "lyrics_path": [None] * len(names),
            "status": ["ok"] * len(names),
        },
        schema=dict.fromkeys(
            ("track_id", "path", "title", "artist", "lyrics_path", "status"), pl.String
        ),
    )


CROSS_SCRIPT_TRACKS = [
    ("ar.0", "Habibi", "Amr Diab"),
    ("ar.1", "Qalbi", "Nancy Ajram"),
    ("ar.2", "Tamally Maak", "Amr Diab"),
    ("ar.3", "Nour El Ain", "Amr Diab"),
    ("ar.4", "Sahar", "Fairuz"),
    ("fa.0", "Zindagi", "Kabir Verma"),
    ("hi.0", "Dil Ki Baat", "Kabir Verma"),
    ("hi.1", "Tum Hi Ho", "Arijit Singh"),
    ("bn.0", "Ekla Cholo Re", "Rahim Das"),
    ("bn.1", "Amar Sonar Bangla", "Rahim Das"),
    ("en.0", "Wild Path", "Emma Carter"),
]


@pytest.mark.parametrize(
    ("stem", "track_id"),
    [
        # Arabic script writes no short vowels: "حبيبي" is h-b-y-b-y, the title "Habibi"
        ("حبيبي", "ar.0"),
        ("قلبي", "ar.1"),
        ("تملي معاك", "ar.2"),
        ("عمرو دياب - نور العين", "ar.3"),
        ("سحر", "ar.4"),
        ("زندگی", "fa.0"),  # Persian letters
        # Devanagari and Bengali script: the transliteration path
        ("दिल की बात", "hi.0"),
        ("तुम ही हो", "hi.1"),
        ("একলা চলো রে", "bn.0"),
        ("রহিম দাস - আমার সোনার বাংলা", "bn.1"),
    ],
)
def test_file_named_in_another_script_pairs_with_romanized_title(stem: str, track_id: str) -> None:
    result = pair_lyrics(
        [_doc(f"{stem}.txt", stem=stem)], _named_tracks(CROSS_SCRIPT_TRACKS), PairingSettings()
    )
    assert list(result.pairs) == [track_id], result.unpaired
    assert result.pairs[track_id].method == "fuzzy"


def test_latin_file_name_pairs_with_arabic_script_title() -> None:
    tracks = _named_tracks([("ar.0", "حبيبي", "عمرو دياب"), ("ar.1", "قلبي", "نانسي عجرم")])
    result = pair_lyrics([_doc("Habibi.txt", stem="Habibi")], tracks, PairingSettings())
    assert list(result.pairs) == ["ar.0"]


def test_two_titles_with_one_consonant_skeleton_are_never_guessed() -> None:
    tracks = _named_tracks([("ar.0", "Habibi", "Amr Diab"), ("ar.9", "Habiba", "Hakim")])
    result = pair_lyrics([_doc("حبيبي.txt", stem="حبيبي")], tracks, PairingSettings())
    assert result.pairs == {}
    (unpaired,) = result.unpaired
    assert unpaired.reason == "ambiguous"
    assert {unpaired.best_track_id, unpaired.second_track_id} == {"ar.0", "ar.9"}


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("حبيبي", "Habibi"),
        ("حبيبي", "7abibi"),
        ("قلبي", "Qalbi"),
        ("عمرو دياب", "Amr Diab"),
        ("تملي معاك", "Tamally Maak"),
        ("زندگی", "Zindagi"),
        ("الله", "Allah"),
    ],
)
def test_consonant_skeletons_of_arabic_and_latin_spellings_meet(one: str, other: str) -> None:
    assert consonant_skeleton(one) == consonant_skeleton(other)


def test_consonant_skeleton_keeps_numbers_and_tells_different_names_apart() -> None:
    assert consonant_skeleton("Track 2") == "trk 2"
    assert consonant_skeleton("Shams") != consonant_skeleton("Sahar")
