"""Which model `predict` uses, and the champion package it downloads (never unpickled)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from models.zoo import build_model
from tasks.audio.features import FeatureConfig
from tasks.evaluation.assignment import fitted_to_json
from tasks.evaluation.champion import CHAMPION_FILES
from tasks.evaluation.clustering import cluster
from tasks.prediction.champion import (
    PredictionError,
    model_version_of,
    read_champion_package,
    resolve_model_uri,
)
from tasks.training.checkpoint import WEIGHTS_FILE, save_trained_model
from tests.prediction.cards import card


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


def write_package(folder: Path) -> torch.nn.Module:
    """A complete champion folder around a small MLP-VAE; returns the model."""
    torch.manual_seed(0)
    model = build_model("mlp_vae", input_shape=(12,)).eval()
    save_trained_model(model, card("mlp_vae", config=model.config.model_dump(mode="json")), folder)
    latents = np.random.default_rng(0).normal(size=(20, model.latent_dim))
    fitted = cluster(latents, algorithm="kmeans", n_clusters=2, seed=0)
    (folder / "clustering.json").write_text(fitted_to_json(fitted.fitted))
    pl.DataFrame({"track_id": [f"t{i}" for i in range(20)], "mu": latents.tolist()}).write_parquet(
        folder / "reference.parquet"
    )
    features = {"config": FeatureConfig().model_dump(mode="json"), "summary_names": []}
    (folder / "feature_config.json").write_text(json.dumps(features))
    return model


def test_a_champion_package_is_read_and_its_encoder_rebuilt(tmp_path: Path) -> None:
    model = write_package(tmp_path)

    package = read_champion_package("models:/vaemusic/1", "1", tmp_path)
    encoder = package.load_encoder()

    assert package.card.model == "mlp_vae"
    assert package.algorithm == "kmeans"
    assert package.feature_config == FeatureConfig()
    assert "mlp_vae [default], clustering kmeans, vector inputs" in package.summary
    x = torch.randn(3, 12)
    torch.testing.assert_close(encoder(x), model.embed({"x": x}))


def test_a_pickled_model_in_a_champion_package_is_refused_and_never_run(tmp_path: Path) -> None:
    # Before, predict loaded champions with mlflow.pytorch.load_model: an unpickling of whatever
    # the tracking store held. A pickle where the weights belong must now be refused unread.
    write_package(tmp_path)
    marker = tmp_path / "marker.txt"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "unpickled"))

    (tmp_path / WEIGHTS_FILE).write_bytes(pickle.dumps(Payload()))
    package = read_champion_package("models:/vaemusic/1", "1", tmp_path)

    with pytest.raises(PredictionError, match="safetensors"):
        package.load_encoder()
    assert not marker.exists()


def test_a_champion_of_the_pickle_era_asks_for_a_new_evaluation(tmp_path: Path) -> None:
    # What mlflow.pytorch.log_model(serialization_format="pickle") left: no card or weights at
    # the top, a pickled module under data/.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "model.pth").write_bytes(b"pickle")
    (tmp_path / "MLmodel").write_text("flavors: {pytorch: {}}")

    with pytest.raises(PredictionError, match="holds a pickled model") as error:
        read_champion_package("models:/vaemusic@champion", "3", tmp_path)

    assert "data/model.pth, MLmodel (flavour pytorch)" in str(error.value)
    assert "retrain" in str(error.value)


def test_a_folder_that_is_no_champion_names_the_missing_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")

    with pytest.raises(PredictionError, match="run the evaluation") as error:
        read_champion_package("runs:/abc/champion", None, tmp_path)

    for name in CHAMPION_FILES:
        assert name in str(error.value)
