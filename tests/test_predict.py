"""`predict`: new tracks -> champion encoder -> clusters, nearest tracks and quarantine reasons.

One small collection (24 demo tracks of 4 s) gets a real champion: ingest, lyrics embedded by a
tiny local XLM-R, a multimodal VAE, the evaluation flow that registers `vaemusic@champion`. New
demo tracks (another seed) plus a broken file are then predicted through the flow, with and
without the champion's lyrics encoder. The pieces (URI parsing, the lyrics decision, encoding
of spectrogram / conditional / multimodal models, nearest tracks) are tested directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from mlflow import MlflowClient

from models.serving import LatentEncoder
from models.zoo import build_model
from tasks.features import TrackFeatures
from tasks.ingest import feature_path
from tasks.lyrics.embedding import CHAR_NGRAM_KIND, TRANSFORMER_KIND, ResolvedEncoder
from tasks.prediction import (
    NEAREST_SEPARATOR,
    PredictionError,
    SideInputs,
    encode_new_tracks,
    language_conditions,
    lyrics_plan,
    model_version_of,
    nearest_reference_tracks,
    prediction_source,
    resolve_model_uri,
    trained_lyrics_encoder_id,
)
from tasks.workspace import Workspace
from tests.tiny_xlmr import build_tiny_xlmr

N_GENRES = 8
REQUIRED_COLUMNS = {"path", "cluster", "score", "nearest_tracks", "reason"}


# ------------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("vaemusic@champion", "models:/vaemusic@champion"),
        ("vaemusic", "models:/vaemusic@champion"),
        ("other-model@challenger", "models:/other-model@challenger"),
        ("models:/vaemusic/3", "models:/vaemusic/3"),
        ("runs:/abc123/champion", "runs:/abc123/champion"),
    ],
)
def test_model_argument_becomes_an_mlflow_uri(given: str, expected: str) -> None:
    assert resolve_model_uri(given) == expected


@pytest.mark.parametrize("given", ["", "@champion", "my model@champion", "a/b@champion"])
def test_bad_model_argument_says_what_is_allowed(given: str) -> None:
    with pytest.raises(PredictionError, match="NAME@ALIAS"):
        resolve_model_uri(given)


def test_missing_alias_tells_how_to_register_a_champion() -> None:
    with pytest.raises(PredictionError, match="register a champion"):
        model_version_of("models:/no-such-model@champion")
    assert model_version_of("models:/vaemusic/4") == "4"
    assert model_version_of("runs:/abc/champion") is None


def test_single_audio_file_becomes_a_one_row_manifest(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "predict")
    song = tmp_path / "My Song.wav"
    song.write_bytes(b"RIFF")
    manifest = prediction_source(song, workspace)
    table = pl.read_csv(manifest)
    assert table.rows() == [(str(song.resolve()), "My Song")]
    assert prediction_source(tmp_path, workspace) == tmp_path.resolve()
    with pytest.raises(PredictionError, match="not found"):
        prediction_source(tmp_path / "missing.wav", workspace)


TRANSFORMER_ID = "transformer:tiny@abc123:max32:norm1"
MULTIMODAL = {"model": "multimodal_vae", "fingerprint": "f00d"}


@pytest.mark.parametrize(
    ("description", "trained_id", "available_id", "used", "says"),
    [
        (MULTIMODAL, TRANSFORMER_ID, TRANSFORMER_ID, True, "as in training"),
        (MULTIMODAL, "char-ngram-tfidf-svd:d64:corpus-1", "char-ngram", False, "cannot embed new"),
        (MULTIMODAL, TRANSFORMER_ID, "transformer:other@def:max32:norm1", False, "not the one"),
        (MULTIMODAL, None, TRANSFORMER_ID, False, "cannot tell"),
        ({"model": "mlp_vae"}, TRANSFORMER_ID, TRANSFORMER_ID, False, "audio only"),
    ],
)
def test_lyrics_are_used_only_with_the_training_encoder(
    description: dict, trained_id: str | None, available_id: str, used: bool, says: str
) -> None:
    kind = CHAR_NGRAM_KIND if available_id.startswith(CHAR_NGRAM_KIND) else TRANSFORMER_KIND
    available = ResolvedEncoder(kind=kind, model_path=None, encoder_id=available_id)
    plan = lyrics_plan(description, trained_id, available)
    assert plan.use_lyrics is used
    assert says in plan.message
    assert "\n" not in plan.message


def test_training_encoder_id_comes_from_the_model_or_the_same_collection(tmp_path: Path) -> None:
    assert trained_lyrics_encoder_id({"lyrics_encoder_id": "x"}, tmp_path) == "x"
    assert trained_lyrics_encoder_id(MULTIMODAL, tmp_path) is None  # no lyrics stage there
    (tmp_path / "lyrics_embeddings.json").write_text(json.dumps({"encoder_id": TRANSFORMER_ID}))
    (tmp_path / "fingerprint.json").write_text(json.dumps({"fingerprint": "f00d"}))
    assert trained_lyrics_encoder_id(MULTIMODAL, tmp_path) == TRANSFORMER_ID
    other_data = {**MULTIMODAL, "fingerprint": "beef"}
    assert trained_lyrics_encoder_id(other_data, tmp_path) is None


def test_language_conditions_follow_training_classes() -> None:
    description = {"condition_classes": ["bn", "en", "none"], "default_condition": 1}
    conditions, from_lyrics = language_conditions(
        description, ["bn", None, "fr", "en", None], [True, False, True, True, True]
    )
    # bn; no lyrics -> "none"; unseen fr -> default; en; lyrics of unknown language -> "none"
    assert conditions.tolist() == [0, 2, 1, 1, 2]
    assert from_lyrics.tolist() == [True, False, False, True, False]


def test_nearest_tracks_are_ranked_in_the_clustering_space() -> None:
    # Dimension 0 varies over ~100 units in the collection, dimension 1 over ~0.1: raw distances
    # rank by dimension 0 alone (a, c, b for the first query); the clustering's scaler makes
    # a unit step in dimension 1 count a thousand times more.
    reference = np.array([[0.0, 0.0], [3.0, 1.0], [100.0, 1.0]])
    clustering = {"mean": [0.0, 0.0], "scale": [100.0, 0.1]}
    query = np.array([[0.0, 1.0], [100.0, 0.0]])
    nearest = nearest_reference_tracks(query, reference, ["a", "c", "b"], clustering, 2)
    assert nearest == [["c", "b"], ["a", "b"]]
    everything = nearest_reference_tracks(query, reference, ["a", "c", "b"], clustering, 10)
    assert everything[0] == ["c", "b", "a"]  # k is capped at the collection size


def _write_features(workspace: Workspace, key: str, sha: str, logmel: np.ndarray, stats) -> None:
    n_crops = logmel.shape[0]
    TrackFeatures(
        logmel=logmel.astype(np.float16),
        mfcc=np.zeros((n_crops, 4, logmel.shape[2]), np.float16),
        crop_stats=stats.astype(np.float32),
        track_stats=stats.mean(axis=0).astype(np.float32),
    ).save(feature_path(workspace, key, sha))


@dataclass
class FakeTracks:
    workspace: Workspace
    shas: list[str]
    logmel: list[np.ndarray]
    stats: list[np.ndarray]


@pytest.fixture
def fake_tracks(tmp_path: Path) -> FakeTracks:
    workspace = Workspace.open(tmp_path)
    rng = np.random.default_rng(0)
    shas, logmels, stats = [], [], []
    for i, n_crops in enumerate((3, 1, 5)):
        sha = f"{i:064x}"
        logmel = rng.normal(-30, 10, (n_crops, 16, 16))
        stat = rng.normal(0, 1, (n_crops, 12))
        _write_features(workspace, "key", sha, logmel, stat)
        shas.append(sha)
        logmels.append(logmel.astype(np.float16).astype(np.float32))
        stats.append(stat.astype(np.float32))
    return FakeTracks(workspace, shas, logmels, stats)


def _description(model: str, input_kind: str, input_shape: list[int]) -> dict:
    return {
        "model": model,
        "input_kind": input_kind,
        "input_shape": input_shape,
        "feature_key": "key",
    }


def test_spectrogram_track_latent_is_the_mean_of_its_crop_latents(fake_tracks: FakeTracks) -> None:
    torch.manual_seed(0)
    model = build_model("conv_vae", input_shape=(16, 16), overrides={"channels": [4, 8]})
    encoder = LatentEncoder(model)
    description = _description("conv_vae", "spectrogram", [16, 16])
    latents = encode_new_tracks(encoder, description, fake_tracks.workspace, fake_tracks.shas)
    assert latents.shape == (3, model.latent_dim)
    for row, logmel in enumerate(fake_tracks.logmel):
        expected = encoder(torch.from_numpy(logmel)).mean(dim=0).numpy()
        np.testing.assert_allclose(latents[row], expected, rtol=1e-5, atol=1e-5)

    wrong = _description("conv_vae", "spectrogram", [32, 16])
    with pytest.raises(PredictionError, match=r"feature_config\.json"):
        encode_new_tracks(encoder, wrong, fake_tracks.workspace, fake_tracks.shas)


def test_conditional_model_uses_each_tracks_condition(fake_tracks: FakeTracks) -> None:
    torch.manual_seed(0)
    model = build_model("cvae", input_shape=(12,), n_conditions=3)
    model.set_input_normalization(np.zeros(12), np.ones(12))
    encoder = LatentEncoder(model, default_condition=0)
    description = _description("cvae", "vector", [12])
    shas = fake_tracks.shas
    by_default = encode_new_tracks(encoder, description, fake_tracks.workspace, shas)
    zeros = SideInputs(condition=np.zeros(3, np.int64))
    explicit_zero = encode_new_tracks(encoder, description, fake_tracks.workspace, shas, zeros)
    twos = SideInputs(condition=np.full(3, 2, np.int64))
    other = encode_new_tracks(encoder, description, fake_tracks.workspace, shas, twos)
    np.testing.assert_allclose(by_default, explicit_zero, atol=1e-6)
    assert not np.allclose(by_default, other, atol=1e-4)


def test_multimodal_model_reads_lyrics_only_where_a_track_has_them(
    fake_tracks: FakeTracks,
) -> None:
    torch.manual_seed(0)
    model = build_model("multimodal_vae", input_shape=(12,), lyrics_dim=6)
    encoder = LatentEncoder(model)
    description = _description("multimodal_vae", "vector", [12])
    shas = fake_tracks.shas
    audio_only = encode_new_tracks(encoder, description, fake_tracks.workspace, shas)
    lyrics = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    lyrics[1] = np.nan  # a track without lyrics: its row must never be read
    mask = np.array([True, False, True])
    side = SideInputs(lyrics=lyrics, lyrics_mask=mask, from_lyrics=mask)
    with_lyrics = encode_new_tracks(encoder, description, fake_tracks.workspace, shas, side)
    assert np.isfinite(with_lyrics).all()
    np.testing.assert_allclose(with_lyrics[1], audio_only[1], atol=1e-6)
    assert not np.allclose(with_lyrics[0], audio_only[0], atol=1e-4)
    assert not np.allclose(with_lyrics[2], audio_only[2], atol=1e-4)


# ------------------------------------------------------------------------------------ the flow


def _tiny_xlmr(texts: list[str], folder: Path) -> Path:
    """A tiny XLM-R (random weights, Unigram tokenizer trained on `texts`) saved like a user's."""
    return build_tiny_xlmr(texts, folder, vocab_size=400, layers=1)


@dataclass
class Champion:
    workdir: Path
    version: str
    encoder_settings: object
    new_tracks: Path
    broken: Path
    reference: pl.DataFrame


@pytest.fixture(scope="module")
def champion(prefect_api, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """A multimodal champion (audio + tiny-XLM-R lyrics) on 24 demo tracks, and 16 new tracks."""
    from flows.evaluate import EvaluateConfig, evaluate_flow
    from flows.ingest import IngestConfig, ingest_flow
    from flows.lyrics import LyricsConfig, lyrics_flow
    from tasks.demo_data import generate_demo_dataset
    from tasks.evaluation import Representation, file_sha
    from tasks.features import FeatureConfig
    from tasks.lyrics.embedding import EncoderSettings
    from tasks.representation import ModelSpec, train_and_encode
    from tasks.training import TrainConfig

    root = tmp_path_factory.mktemp("predict")
    # Seeds of their own, so that no other test's champion was chosen on the same data.
    collection = generate_demo_dataset(root / "collection", tracks=24, seed=7, duration_s=4.0)
    new = generate_demo_dataset(root / "new", tracks=16, seed=8, duration_s=4.0)
    broken = new.audio_dir / "rock" / "broken.wav"
    broken.write_bytes(np.random.default_rng(0).bytes(4000))

    texts = [p.read_text() for p in sorted(collection.lyrics_dir.glob("*"))]
    settings = EncoderSettings(model=str(_tiny_xlmr(texts, root / "tiny-xlmr")), max_tokens=32)
    workdir = root / "work"
    features = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32)
    ingested = ingest_flow(IngestConfig(data=collection.root, workdir=workdir, features=features))
    lyrics = lyrics_flow(LyricsConfig(data=collection.root, workdir=workdir, encoder=settings))
    assert lyrics.encoder_kind == TRANSFORMER_KIND
    assert lyrics.n_with_lyrics > 0
    trained = train_and_encode(
        ModelSpec(model="multimodal_vae", train=TrainConfig(epochs=10, seed=0)),
        ingested.workspace,
        ingested.feature_key,
        ingested.fingerprint,
        register=False,
    )
    representation = Representation(
        method=trained.method,
        features=trained.features,
        latents=trained.latents,
        latents_sha=file_sha(trained.latents),
        run_id=trained.run_id,
        model_dir=trained.model_dir,
    )
    evaluated = evaluate_flow(
        EvaluateConfig(
            data=collection.root,
            workdir=workdir,
            algorithms=["kmeans"],
            seeds=1,
            maps=[],
            representations=[representation],
        )
    )
    assert evaluated.champion_version is not None
    return Champion(
        workdir=workdir,
        version=evaluated.champion_version,
        encoder_settings=settings,
        new_tracks=new.root,
        broken=broken,
        reference=pl.read_parquet(workdir / "champion" / "reference.parquet"),
    )


def _genre_of(path: str) -> str:
    return Path(path).parent.name


def test_new_tracks_get_clusters_nearest_tracks_and_quarantine_reasons(champion: Champion) -> None:
    from flows.predict import PredictConfig, predict_flow

    result = predict_flow(
        PredictConfig(
            data=champion.new_tracks,
            workdir=champion.workdir,
            lyrics_encoder=champion.encoder_settings,
        )
    )
    assert result.model_version == champion.version
    assert result.predictions == (champion.workdir / "predict" / "predictions.csv").resolve()
    table = pl.read_csv(result.predictions)
    assert set(table.columns) >= REQUIRED_COLUMNS
    assert table.height == 17
    assert result.n_quarantined == 1
    assert result.n_assigned == 16

    broken = table.filter(pl.col("path") == str(champion.broken.resolve()))
    assert broken["cluster"].to_list() == [None]
    assert broken["score"].to_list() == [None]
    assert "cannot decode" in broken["reason"][0]

    good = table.filter(pl.col("path") != str(champion.broken.resolve()))
    reference_ids = set(champion.reference["track_id"].to_list())
    clusters = set(champion.reference["cluster"].to_list())
    assert good["reason"].null_count() == good.height
    assert set(good["cluster"].to_list()) <= clusters
    assert good["score"].is_finite().all()
    assert (good["score"] >= 0).all()
    assert (good["score_kind"] == "distance").all()  # k-means: distance to the centroid
    for nearest in good["nearest_tracks"].to_list():
        ids = nearest.split(NEAREST_SEPARATOR)
        assert len(ids) == 5
        assert set(ids) <= reference_ids

    # The champion was trained with this lyrics encoder: tracks with lyrics used them.
    paired = pl.read_parquet(champion.workdir / "predict" / "lyrics.parquet")
    used = good.join(paired.select("track_id", "has_lyrics"), on="track_id")
    assert used.height == 16
    assert used["used_lyrics"].to_list() == used["has_lyrics"].to_list()
    assert result.n_used_lyrics == int(used["has_lyrics"].sum()) > 0

    # New tracks land mostly with their genre-mates: the majority genre of the collection
    # tracks in their cluster is their own genre more often than chance (1/8).
    majority = champion.reference.group_by("cluster").agg(
        pl.col("genre").mode().sort().first().alias("majority_genre")
    )
    assigned = good.join(majority, on="cluster").with_columns(
        pl.col("path").map_elements(_genre_of, return_dtype=pl.String).alias("genre")
    )
    agreement = (assigned["genre"] == assigned["majority_genre"]).mean()
    assert agreement > 1 / N_GENRES

    run = MlflowClient().get_run(result.run_id)
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == "predict"
    assert run.data.params["model_version"] == champion.version
    assert run.data.metrics["n_quarantined"] == 1
    assert run.data.metrics["n_assigned"] == 16
    artifacts = [a.path for a in MlflowClient().list_artifacts(result.run_id)]
    assert "predictions.csv" in artifacts
    assert "broken.wav" in result.table
    assert "cannot decode" in result.table


def test_without_the_training_lyrics_encoder_tracks_are_encoded_from_audio(
    champion: Champion, tmp_path: Path
) -> None:
    from flows.predict import PredictConfig, predict_flow
    from tasks.lyrics.embedding import EncoderSettings

    def latents(predict_dir: Path) -> dict[str, list[float]]:
        table = pl.read_parquet(predict_dir / "predict_latents.parquet")
        return dict(zip(table["track_id"].to_list(), table["mu"].to_list(), strict=True))

    with_lyrics_dir, audio_dir = tmp_path / "with-lyrics", tmp_path / "audio-only"
    predict_flow(
        PredictConfig(
            data=champion.new_tracks,
            workdir=champion.workdir,
            predict_dir=with_lyrics_dir,
            lyrics_encoder=champion.encoder_settings,
        )
    )
    result = predict_flow(
        PredictConfig(
            data=champion.new_tracks,
            workdir=champion.workdir,
            predict_dir=audio_dir,
            lyrics_encoder=EncoderSettings(kind="char-ngram"),
            out=tmp_path / "out" / "p.csv",
        )
    )
    table = pl.read_csv(tmp_path / "out" / "p.csv")
    assert result.n_used_lyrics == 0
    assert result.n_assigned == 16
    assert table.filter(pl.col("cluster").is_not_null())["used_lyrics"].sum() == 0

    has_lyrics = dict(
        pl.read_parquet(with_lyrics_dir / "lyrics.parquet").select("track_id", "has_lyrics").rows()
    )
    assert any(has_lyrics.values())
    assert not all(has_lyrics.values())
    first, second = latents(with_lyrics_dir), latents(audio_dir)
    for track_id, mu in first.items():
        if has_lyrics[track_id]:
            assert not np.allclose(mu, second[track_id], atol=1e-5), track_id
        else:
            np.testing.assert_allclose(mu, second[track_id], atol=1e-5)


def test_one_audio_file_and_a_missing_model(champion: Champion, tmp_path: Path) -> None:
    from flows.predict import PredictConfig, predict_flow

    song = next((champion.new_tracks / "genres_original" / "metal").glob("*.wav"))
    result = predict_flow(
        PredictConfig(
            data=song,
            workdir=champion.workdir,
            predict_dir=tmp_path / "one",
            model=f"models:/vaemusic/{champion.version}",
            n_nearest=3,
        )
    )
    table = pl.read_csv(result.predictions)
    assert table["path"].to_list() == [str(song.resolve())]
    assert table["track_id"].to_list() == [song.stem]
    assert table["cluster"].null_count() == 0
    assert len(table["nearest_tracks"][0].split(NEAREST_SEPARATOR)) == 3

    with pytest.raises(PredictionError, match="no registered model version"):
        predict_flow(
            PredictConfig(
                data=song,
                workdir=champion.workdir,
                predict_dir=tmp_path / "two",
                model="vaemusic@no-such-alias",
            )
        )
