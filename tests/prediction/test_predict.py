"""`predict`: new tracks -> champion encoder -> clusters, nearest tracks and quarantine reasons.

One small collection (24 demo tracks of 4 s) gets a real champion: ingest, lyrics embedded by a
tiny local XLM-R, a multimodal VAE, the evaluation flow that registers `vaemusic@champion`. New
demo tracks (another seed) plus a broken file are then predicted through the flow, with and
without the champion's lyrics encoder. The pieces are tested in the other files of this folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from tasks.lyrics.embedding import TRANSFORMER_KIND
from tasks.prediction.champion import PredictionError
from tasks.prediction.placement import NEAREST_SEPARATOR, SCORE_LEGEND, reference_names
from tests.lyrics.tiny_xlmr import build_tiny_xlmr

N_GENRES = 8
REQUIRED_COLUMNS = {"path", "track", "cluster", "score", "nearest_tracks", "reason"}


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
    from tasks.audio.features import FeatureConfig
    from tasks.demo import generate_demo_dataset
    from tasks.evaluation.representations import Representation, file_sha
    from tasks.lyrics.embedding import EncoderSettings
    from tasks.training.representation import ModelSpec, train_representation
    from tasks.training.trainer import TrainConfig

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
    trained = train_representation.fn(
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
    # Tracks are named by artist and title, the new ones and their nearest collection tracks.
    names = reference_names(champion.reference)
    assert champion.reference["title"].null_count() == 0  # the demo collection has titles
    assert all(" - " in name for name in good["track"].to_list())
    for ids, nearest in zip(good["nearest_track_ids"], good["nearest_tracks"], strict=True):
        ids = ids.split(NEAREST_SEPARATOR)
        assert len(ids) == 5
        assert set(ids) <= reference_ids
        assert nearest.split(NEAREST_SEPARATOR) == [names[i] for i in ids]

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
    assert good["track"][0] in result.table
    assert SCORE_LEGEND["distance"] in result.table  # the score is explained under the table


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
