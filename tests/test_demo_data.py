"""The built-in demo data set: layout, metadata, multilingual lyrics, audio, determinism."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from anyascii import anyascii
from rapidfuzz import fuzz
from scipy import stats

from tasks.demo_data import (
    GENRES,
    METADATA_COLUMNS,
    DemoDataError,
    DemoDataset,
    generate_demo_dataset,
    plan_demo_tracks,
    synthesize_track,
)

SMALL_TRACKS = 24  # with seed 0, enough for every language, script and lyrics-file kind
SHORT_S = 2.0
BENGALI = re.compile("[\u0980-\u09ff]")
DEVANAGARI = re.compile("[\u0900-\u097f]")
ARABIC = re.compile("[\u0600-\u06ff]")
LATIN_WORD = re.compile("[A-Za-z]{2,}")
TIME_TAG = re.compile(r"^\[(\d{2}):(\d{2}\.\d{2})\]")
TRACK_ID_FILE = re.compile(r"[a-z]+\.\d{5}\.(txt|lrc)")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("demo") / "set", tracks=SMALL_TRACKS, seed=0, duration_s=SHORT_S
    )


@pytest.fixture(scope="module")
def metadata(small_set: DemoDataset) -> pl.DataFrame:
    return pl.read_csv(small_set.metadata_csv)


@pytest.fixture(scope="module")
def truth(small_set: DemoDataset) -> pl.DataFrame:
    return pl.read_csv(small_set.lyrics_truth_csv, schema_overrides={"track_id": pl.String})


def _file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _lyrics_of(small_set: DemoDataset, truth: pl.DataFrame, track_id: str) -> str:
    (name,) = truth.filter(pl.col("track_id") == track_id)["lyrics_file"].to_list()
    return (small_set.lyrics_dir / name).read_text(encoding="utf-8")


def _sung_lines(text: str) -> list[str]:
    """Lyric lines without section tags, LRC headers or time tags."""
    lines = []
    for line in text.splitlines():
        line = TIME_TAG.sub("", line).strip()
        if line and not re.fullmatch(r"\[[^\]]*\]", line):
            lines.append(line)
    return lines


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(small_set: DemoDataset, tmp_path: Path) -> None:
    again = generate_demo_dataset(
        tmp_path / "again", tracks=SMALL_TRACKS, seed=0, duration_s=SHORT_S
    )
    assert _file_digests(again.root) == _file_digests(small_set.root)


def test_track_k_does_not_depend_on_collection_size(small_set: DemoDataset, tmp_path: Path) -> None:
    fewer = generate_demo_dataset(tmp_path / "fewer", tracks=10, seed=0, duration_s=SHORT_S)
    fewer_digests = _file_digests(fewer.root)
    full_digests = _file_digests(small_set.root)
    wavs = [name for name in fewer_digests if name.endswith(".wav")]
    assert len(wavs) == 10
    for name in wavs:
        assert fewer_digests[name] == full_digests[name], name
    fewer_metadata = pl.read_csv(fewer.metadata_csv)
    assert fewer_metadata.equals(pl.read_csv(small_set.metadata_csv).head(10))


def test_other_seed_gives_other_audio_and_songs(small_set: DemoDataset, tmp_path: Path) -> None:
    other = generate_demo_dataset(tmp_path / "other", tracks=8, seed=1, duration_s=SHORT_S)
    other_digests = _file_digests(other.root)
    same_seed_digests = _file_digests(small_set.root)
    wavs = [name for name in other_digests if name.endswith(".wav")]
    assert all(other_digests[name] != same_seed_digests[name] for name in wavs)
    titles = set(pl.read_csv(other.metadata_csv)["title"])
    assert titles != set(pl.read_csv(small_set.metadata_csv).head(8)["title"])


# --- layout and metadata ----------------------------------------------------------------------


def test_audio_layout_follows_gtzan(small_set: DemoDataset, metadata: pl.DataFrame) -> None:
    wavs = sorted(small_set.audio_dir.rglob("*.wav"))
    assert len(wavs) == SMALL_TRACKS == small_set.n_tracks
    assert {path.parent.name for path in wavs} == set(GENRES) == set(small_set.genres)
    for path in wavs:
        assert re.fullmatch(rf"{path.parent.name}\.\d{{5}}\.wav", path.name)
    for genre in GENRES:
        numbers = sorted(int(p.stem.split(".")[1]) for p in (small_set.audio_dir / genre).iterdir())
        assert numbers == list(range(len(numbers)))  # numbered per genre from 00000
    assert {f"{p.parent.name}/{p.stem}" for p in wavs} == {
        f"{genre}/{track_id}" for genre, track_id in metadata.select("genre", "track_id").rows()
    }


def test_metadata_columns_and_values(metadata: pl.DataFrame) -> None:
    assert tuple(metadata.columns) == METADATA_COLUMNS
    assert metadata.schema["romanized"] == pl.Boolean
    assert metadata.schema["code_mixed"] == pl.Boolean
    assert metadata.schema["has_lyrics"] == pl.Boolean
    assert metadata.null_count().sum_horizontal().item() == 0
    assert set(metadata["language"]) == {"bn", "hi", "en", "es", "ar"}
    assert set(metadata["script"]) == {"Beng", "Latn", "Deva", "Arab"}
    for row in metadata.iter_rows(named=True):
        assert row["track_id"].split(".")[0] == row["genre"]
        expected_scripts = {"bn": {"Beng", "Latn"}, "hi": {"Deva"}, "ar": {"Arab"}}
        assert row["script"] in expected_scripts.get(row["language"], {"Latn"})
        assert row["romanized"] == (row["language"] == "bn" and row["script"] == "Latn")
        assert not row["code_mixed"] or row["language"] == "bn"
        # titles and artists in metadata are in Latin letters, romanized where needed
        assert not BENGALI.search(row["title"] + row["artist"])
    assert metadata["romanized"].any()
    assert metadata["code_mixed"].any()
    songs = metadata.select(pl.col("artist").str.to_lowercase(), pl.col("title").str.to_lowercase())
    assert songs.n_unique() == metadata.height


def test_lyrics_truth_lists_every_lyrics_file(
    small_set: DemoDataset, metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    on_disk = {path.name for path in small_set.lyrics_dir.iterdir()}
    assert set(truth["lyrics_file"]) == on_disk
    paired = set(truth["track_id"].drop_nulls())
    assert paired == set(metadata.filter("has_lyrics")["track_id"])
    assert truth["track_id"].drop_nulls().is_unique().all()


def test_about_one_track_in_ten_has_no_lyrics(metadata: pl.DataFrame) -> None:
    without = metadata.filter(~pl.col("has_lyrics")).height
    assert 1 <= without <= 0.2 * metadata.height
    plans = plan_demo_tracks(200, seed=3)
    share = sum(not plan.has_lyrics for plan in plans) / len(plans)
    assert 0.08 <= share <= 0.12


def test_marker_describes_the_set(small_set: DemoDataset) -> None:
    marker = json.loads((small_set.root / "demo_dataset.json").read_text())
    assert marker["seed"] == 0
    assert marker["n_tracks"] == SMALL_TRACKS
    assert marker["sample_rate"] == 22050
    assert marker["languages"] == ["ar", "bn", "en", "es", "hi"]


# --- lyrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "script", "pattern"),
    [
        ("bn", "Beng", BENGALI),
        ("hi", "Deva", DEVANAGARI),
        ("ar", "Arab", ARABIC),
        ("en", "Latn", LATIN_WORD),
        ("es", "Latn", LATIN_WORD),
    ],
)
def test_lyrics_are_written_in_the_promised_script(
    small_set: DemoDataset,
    metadata: pl.DataFrame,
    truth: pl.DataFrame,
    language: str,
    script: str,
    pattern: re.Pattern[str],
) -> None:
    tracks = metadata.filter(
        pl.col("has_lyrics") & (pl.col("language") == language) & (pl.col("script") == script)
    )
    assert tracks.height > 0
    for track_id in tracks["track_id"]:
        lines = _sung_lines(_lyrics_of(small_set, truth, track_id))
        assert 8 <= len(lines) <= 16
        assert sum(bool(pattern.search(line)) for line in lines) >= len(lines) // 2
        if script != "Beng":
            assert not any(BENGALI.search(line) for line in lines)


def test_romanized_bangla_is_in_latin_letters(
    small_set: DemoDataset, metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    tracks = metadata.filter("has_lyrics", "romanized")
    assert tracks.height > 0
    for track_id in tracks["track_id"]:
        text = _lyrics_of(small_set, truth, track_id)
        assert not BENGALI.search(text)
        assert re.search(r"\b(amar|tumi|tomar|ami|mon|dake|niye|majhe|gele)\b", text)


def test_code_mixed_lyrics_mix_bangla_and_english_in_lines(
    small_set: DemoDataset, metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    tracks = metadata.filter("has_lyrics", "code_mixed")
    assert tracks.height > 0
    english = r"\b(baby|night|heart|miss|smile|calling|worries|let it go)\b"
    for track_id, script in tracks.select("track_id", "script").rows():
        lines = _sung_lines(_lyrics_of(small_set, truth, track_id))
        if script == "Beng":
            mixed = [line for line in lines if BENGALI.search(line) and re.search(english, line)]
        else:
            bangla = r"\b(ami|amar|tumi|tomar|kori|ta|na|jeno|aaj|niye|khuji|moto|kache)\b"
            mixed = [line for line in lines if re.search(bangla, line) and re.search(english, line)]
        assert mixed, track_id


def test_lrc_files_carry_increasing_time_tags(small_set: DemoDataset) -> None:
    lrc_files = sorted(small_set.lyrics_dir.glob("*.lrc"))
    assert lrc_files
    for path in lrc_files:
        tagged = [TIME_TAG.match(line) for line in path.read_text(encoding="utf-8").splitlines()]
        seconds = [int(m[1]) * 60 + float(m[2]) for m in tagged if m]
        assert len(seconds) >= 8
        assert seconds == sorted(seconds)
        assert seconds[-1] < SHORT_S
        assert TRACK_ID_FILE.fullmatch(path.name)


def test_some_lyrics_files_are_named_by_artist_and_title_in_both_scripts(
    truth: pl.DataFrame,
) -> None:
    names = truth["lyrics_file"].to_list()
    by_track_id = [name for name in names if TRACK_ID_FILE.fullmatch(name)]
    by_song = [name for name in names if not TRACK_ID_FILE.fullmatch(name)]
    assert by_track_id
    assert all(re.search(r"[ _]-[ _]", name) for name in by_song)
    assert any(BENGALI.search(name) for name in by_song)
    assert any(not BENGALI.search(name) for name in by_song)


def _song_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", anyascii(text).lower().replace("_", " ")).split())


def test_artist_title_files_pair_unambiguously_after_romanizing(
    metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    """A fuzzy matcher that romanizes file names with anyascii finds the right track for every
    "Artist - Title" file, Bengali-script names included, and scores the orphans lower."""
    songs = {
        track_id: _song_key(f"{artist} - {title}")
        for track_id, artist, title in metadata.select("track_id", "artist", "title").rows()
    }
    paired_scores, orphan_scores = [], []
    for name, track_id in truth.rows():
        if TRACK_ID_FILE.fullmatch(name):
            continue
        key = _song_key(Path(name).stem)
        scores = {candidate: fuzz.ratio(key, song) for candidate, song in songs.items()}
        best = max(scores, key=scores.__getitem__)
        if track_id is None:
            orphan_scores.append(scores[best])
            continue
        runner_up = max(score for candidate, score in scores.items() if candidate != best)
        assert best == track_id, (name, best)
        assert scores[best] - runner_up >= 10, name
        paired_scores.append(scores[best])
    assert len(orphan_scores) == 2
    assert max(orphan_scores) < min(paired_scores)


def test_two_orphan_lyrics_files_belong_to_no_track(
    small_set: DemoDataset, truth: pl.DataFrame
) -> None:
    orphans = truth.filter(pl.col("track_id").is_null())["lyrics_file"].to_list()
    assert len(orphans) == 2
    assert any(BENGALI.search(name) for name in orphans)
    for name in orphans:
        assert len(_sung_lines((small_set.lyrics_dir / name).read_text(encoding="utf-8"))) >= 8


# --- audio ------------------------------------------------------------------------------------


def test_default_clip_is_30_s_22050_hz_mono_pcm16(tmp_path: Path) -> None:
    dataset = generate_demo_dataset(tmp_path / "one", tracks=1, seed=0)
    (path,) = dataset.audio_dir.rglob("*.wav")
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    assert info.frames == 30 * 22050
    assert dataset.duration_s == 30.0


def test_audio_is_finite_audible_and_not_clipped(small_set: DemoDataset) -> None:
    for path in sorted(small_set.audio_dir.rglob("*.wav")):
        samples, rate = sf.read(path, dtype="int16")
        assert rate == 22050
        assert samples.shape == (round(SHORT_S * rate),)
        as_float = samples.astype(np.float64) / 32768
        assert np.isfinite(as_float).all()
        assert np.sqrt(np.mean(as_float**2)) > 0.01, path.name  # louder than -40 dBFS
        assert np.abs(samples).max() < 32000, path.name  # headroom: nothing at full scale


def _spectral_centroid_hz(audio: np.ndarray, sample_rate: int) -> float:
    """Mean over 2048-sample frames of the magnitude-weighted mean frequency (as librosa's)."""
    frames = audio[: len(audio) // 2048 * 2048].reshape(-1, 2048) * np.hanning(2048)
    magnitude = np.abs(np.fft.rfft(frames, axis=1))
    frequencies = np.fft.rfftfreq(2048, 1 / sample_rate)
    return float(np.mean(magnitude @ frequencies / (magnitude.sum(axis=1) + 1e-12)))


def _low_band_share(audio: np.ndarray, sample_rate: int) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    return float(power[frequencies < 200].sum() / power.sum())


def _band_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean and spread over time of the log energy in 7 bands, relative to the frame's mean: a
    crude timbre-and-rhythm descriptor [shape=(14,)]."""
    frames = audio[: len(audio) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(1024, 1 / sample_rate)
    edges = (0, 100, 250, 600, 1500, 3500, 8000, sample_rate / 2 + 1)
    bands = np.stack(
        [
            power[:, (frequencies >= low) & (frequencies < high)].sum(axis=1)
            for low, high in itertools.pairwise(edges)
        ],
        axis=1,
    )
    log_bands = np.log(bands + 1e-10)
    log_bands -= log_bands.mean(axis=1, keepdims=True)
    return np.concatenate([log_bands.mean(axis=0), log_bands.std(axis=0)])


def test_genres_differ_measurably_but_overlap() -> None:
    """Genres are told apart well above chance by simple spectral features, yet not perfectly,
    and differ in sub-bass share and brightness the way their instruments would."""
    genres, profiles, bass_shares, centroids = [], [], {}, {}
    for genre in GENRES:
        for track in range(6):
            audio = synthesize_track(
                genre, np.random.default_rng([7, track, GENRES.index(genre)]), duration_s=4.0
            )
            genres.append(genre)
            profiles.append(_band_profile(audio, 22050))
            bass_shares.setdefault(genre, []).append(_low_band_share(audio, 22050))
            centroids.setdefault(genre, []).append(_spectral_centroid_hz(audio, 22050))
    features = np.array(profiles)
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    distances = ((features[:, None] - features[None]) ** 2).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)
    labels = np.array(genres)
    nearest_neighbour_accuracy = float((labels[distances.argmin(axis=1)] == labels).mean())
    assert 3 / len(GENRES) < nearest_neighbour_accuracy < 0.9  # chance is 1/8
    assert stats.kruskal(*bass_shares.values()).pvalue < 1e-3
    # 808 sub-bass against strings and cello; bowed strings darker than supersaws and hats
    assert np.median(bass_shares["hiphop"]) > np.median(bass_shares["classical"])
    assert np.median(centroids["classical"]) < np.median(centroids["electronic"])


# --- output folder and parameters -------------------------------------------------------------


def test_regenerating_a_demo_folder_leaves_no_stale_files(tmp_path: Path) -> None:
    generate_demo_dataset(tmp_path / "set", tracks=12, seed=0, duration_s=0.5)
    smaller = generate_demo_dataset(tmp_path / "set", tracks=4, seed=0, duration_s=0.5)
    assert len(list(smaller.audio_dir.rglob("*.wav"))) == 4
    truth = pl.read_csv(smaller.lyrics_truth_csv)
    assert {path.name for path in smaller.lyrics_dir.iterdir()} == set(truth["lyrics_file"])


def test_refuses_to_write_into_a_folder_it_did_not_make(tmp_path: Path) -> None:
    real_collection = tmp_path / "gtzan"
    (real_collection / "genres_original" / "blues").mkdir(parents=True)
    keep = real_collection / "genres_original" / "blues" / "blues.00000.wav"
    keep.write_bytes(b"not ours")
    with pytest.raises(DemoDataError, match="did not write"):
        generate_demo_dataset(real_collection, tracks=2, duration_s=0.5)
    assert keep.read_bytes() == b"not ours"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tracks": 0}, "tracks=0"),
        ({"sample_rate": 100}, "sample_rate=100"),
        ({"duration_s": 0.0}, "duration_s=0.0"),
    ],
)
def test_bad_parameters_are_named_in_the_error(
    tmp_path: Path, arguments: dict[str, float], message: str
) -> None:
    with pytest.raises(DemoDataError, match=message):
        generate_demo_dataset(tmp_path / "set", **arguments)
    assert not (tmp_path / "set").exists()
