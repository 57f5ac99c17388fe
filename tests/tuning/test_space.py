"""Search spaces: every model's space trains, spaces do not share parameter names, a finished
trial's parameters replay to its configuration."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import torch

from models.zoo import MODEL_CLASSES, build_model, model_class
from tasks.evaluation.clustering import ALGORITHMS
from tasks.training.trainer import TrainConfig
from tasks.tuning.space import (
    ClusteringChoice,
    SearchSettings,
    settings_from_params,
    suggest_trial_settings,
)


class RecordingTrial:
    """Wraps an Optuna trial and remembers which parameter names each space suggested."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.names: list[str] = []

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        self.names.append(name)
        return self.trial.suggest_int(name, low, high, **kwargs)

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        self.names.append(name)
        return self.trial.suggest_float(name, low, high, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.names.append(name)
        return self.trial.suggest_categorical(name, choices)


def _example_batch(name: str, input_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    cls = model_class(name)
    batch = {"x": torch.randn(4, *input_shape)}
    if cls.uses_condition:
        batch["condition"] = torch.tensor([0, 1, 2, 0])
    if cls.uses_lyrics:
        batch["lyrics"] = torch.randn(4, 16)
        batch["lyrics_mask"] = torch.tensor([True, False, True, True])
    return batch


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_every_model_search_space_yields_a_model_that_trains_one_step(name: str) -> None:
    # given random draws from the model's space + the trainer's + the clustering's
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
    cls = model_class(name)
    input_shape = (32, 32) if cls.input_kind == "spectrogram" else (40,)
    search = SearchSettings(model=name, n_clusters_range=(2, 6))
    for _ in range(3):
        trial = study.ask()
        settings = suggest_trial_settings(trial, search, n_clusters=None, features_label="t")
        # when the suggested overrides build the model
        model = build_model(
            name,
            input_shape=input_shape,
            overrides=settings.spec.overrides,
            n_conditions=3 if cls.uses_condition else 0,
            lyrics_dim=16 if cls.uses_lyrics else 0,
        )
        batch = _example_batch(name, input_shape)
        loss = model.loss_function(batch, model(batch))["loss"]
        # then it trains, with trainer and clustering settings inside their declared ranges
        assert torch.isfinite(loss)
        loss.backward()
        train = settings.spec.train
        assert 1e-4 <= train.learning_rate <= 3e-3
        assert train.batch_size in (32, 64, 128)
        assert 0 <= train.kl_warmup_epochs <= 10
        assert train.epochs == search.epochs
        assert train.validation_fraction == search.validation_fraction
        assert settings.clustering.algorithm in ("kmeans", "gmm", "agglomerative")
        assert 2 <= settings.clustering.n_clusters <= 6
        assert {"cluster_algorithm", "n_clusters", "learning_rate"} <= set(trial.params)
        # and a finished trial's params replay to the same configuration
        replay = settings_from_params(trial.params, search, n_clusters=None, features_label="t")
        assert replay == settings
        study.tell(trial, 0.0)


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_model_trainer_and_clustering_spaces_use_distinct_parameter_names(name: str) -> None:
    trial = RecordingTrial(optuna.create_study().ask())
    model_class(name).search_space(trial)
    model_names = set(trial.names)
    trial.names.clear()
    TrainConfig.search_space(trial)
    trainer_names = set(trial.names)
    trial.names.clear()
    ClusteringChoice.search_space(
        trial, algorithms=("kmeans", "gmm"), n_clusters_range=(2, 5), fixed_n_clusters=None
    )
    clustering_names = set(trial.names)
    assert model_names
    assert trainer_names
    assert clustering_names == {"cluster_algorithm", "n_clusters"}
    assert not model_names & trainer_names
    assert not (model_names | trainer_names) & clustering_names


def test_fixed_cluster_count_is_not_searched() -> None:
    trial = optuna.create_study().ask()
    choice = ClusteringChoice.search_space(
        trial, algorithms=("gmm",), n_clusters_range=(2, 12), fixed_n_clusters=10
    )
    assert choice == {"algorithm": "gmm", "n_clusters": 10}
    assert "n_clusters" not in trial.params
    assert set(ALGORITHMS) >= {"kmeans", "gmm", "agglomerative"}


def test_search_settings_reject_bad_model_and_range() -> None:
    with pytest.raises(ValueError, match="no_such_model"):
        SearchSettings(model="no_such_model")
    with pytest.raises(ValueError, match="n_clusters_range"):
        SearchSettings(model="mlp_vae", n_clusters_range=(5, 3))
