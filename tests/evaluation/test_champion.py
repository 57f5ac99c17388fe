"""Choosing the champion: which row, which training seed, when it replaces today's champion, and
the package it ships in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from registry.champion import ChampionRecord
from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import assign, fitted_from_json
from tasks.evaluation.champion import (
    CHAMPION_DESCRIPTION_FILES,
    CHAMPION_FILES,
    CLUSTERING_FILE,
    REFERENCE_FILE,
    best_training_seed,
    choose_champion,
    map_representation,
    should_replace,
    write_champion_package,
)
from tasks.evaluation.clusters import ChampionClustering, fit_champion_clustering
from tasks.evaluation.report import build_comparison_table, rank
from tasks.evaluation.representations import (
    Labels,
    Representation,
    pool_rows,
    trained_representations,
)
from tasks.training.checkpoint import save_trained_model
from tasks.training.model_card import ModelCard
from tasks.training.representation import write_latents
from tasks.training.trainer import TrackLatents


def _representation(
    method: str, features: str = "default", *, seed: int = 0, uses_labels: bool = False
) -> Representation:
    return Representation(
        method=method,
        features=features,
        latents=Path(f"/nowhere/{method}-{features}-{seed}.parquet"),
        latents_sha=f"{method}{features}{seed}",
        uses_labels=uses_labels,
    )


def _rows(
    representation: Representation, nmi_per_seed: list[float], algorithm: str = "kmeans"
) -> list[dict[str, Any]]:
    """`evaluate_representation`'s rows for one representation: one per clustering seed."""
    return [
        {
            "method": representation.method,
            "features": representation.features,
            "uses_labels": representation.uses_labels,
            "algorithm": algorithm,
            "seed": seed,
            "n_clusters": 3,  # a clustering that found structure (ranked)
            "nmi": nmi,
            "silhouette": 0.2,
            "davies_bouldin": 1.0,
        }
        for seed, nmi in enumerate(nmi_per_seed)
    ]


def _evaluated(
    scored: list[tuple[Representation, list[dict[str, Any]]]], by: str = "nmi"
) -> tuple[pl.DataFrame, list[Representation], list[list[dict[str, Any]]]]:
    representations = [representation for representation, _ in scored]
    per_representation = [rows for _, rows in scored]
    table = rank(build_comparison_table(pool_rows(per_representation)), by=by)
    return table, representations, per_representation


def test_the_champion_is_the_best_ranked_unsupervised_model_not_a_baseline_nor_a_labelled_one():
    pca, ae, vae = _representation("pca"), _representation("ae"), _representation("mlp_vae")
    cvae_genre = _representation("cvae", uses_labels=True)
    table, representations, rows = _evaluated(
        [
            (pca, _rows(pca, [0.9])),
            (ae, _rows(ae, [0.4])),
            (vae, _rows(vae, [0.6])),
            (cvae_genre, _rows(cvae_genre, [0.95])),
        ]
    )
    candidate = choose_champion(table, representations, rows)
    assert candidate is not None
    assert (candidate.method, candidate.algorithm, candidate.metric) == ("mlp_vae", "kmeans", "nmi")
    assert candidate.value == pytest.approx(0.6)
    assert candidate.representation is vae


def test_vade_mixture_rows_are_ranked_but_never_shipped():
    vade = _representation("vade")
    table, representations, rows = _evaluated(
        [(vade, _rows(vade, [0.5]) + _rows(vade, [0.9], algorithm="mixture"))]
    )
    candidate = choose_champion(table, representations, rows)
    assert candidate is not None
    assert candidate.algorithm == "kmeans"


def test_no_champion_without_a_ranked_trained_model():
    pca = _representation("pca")
    table, representations, rows = _evaluated([(pca, _rows(pca, [0.9]))])
    assert choose_champion(table, representations, rows) is None


def test_the_shipped_training_seed_is_the_one_that_scored_best_on_the_row():
    seeds = [_representation("mlp_vae", seed=s) for s in range(3)]
    nmi_per_training_seed = ([0.5, 0.5], [0.7, 0.7], [0.6, 0.6])
    table, representations, rows = _evaluated(
        [(seed, _rows(seed, nmi)) for seed, nmi in zip(seeds, nmi_per_training_seed, strict=True)]
    )
    candidate = choose_champion(table, representations, rows)
    assert candidate is not None
    assert candidate.representation is seeds[1]
    assert candidate.value == pytest.approx(0.6)  # the row pools every seed


def test_a_lower_is_better_metric_ships_the_seed_with_the_lowest_value():
    low, high = _representation("ae", seed=0), _representation("ae", seed=1)
    low_rows, high_rows = _rows(low, [0.5]), _rows(high, [0.5])
    low_rows[0]["davies_bouldin"], high_rows[0]["davies_bouldin"] = 0.4, 2.0
    table, representations, rows = _evaluated(
        [(high, high_rows), (low, low_rows)], by="davies_bouldin"
    )
    candidate = choose_champion(table, representations, rows)
    assert candidate is not None
    assert candidate.representation is low


def test_a_genre_conditioned_model_of_the_same_name_is_never_shipped_for_an_unsupervised_row():
    # Bug: the seed was picked among every representation with the row's method and features,
    # so a label-using CVAE that scored higher could ship as the unsupervised champion.
    language = _representation("cvae")
    genre = _representation("cvae", uses_labels=True)
    table, representations, rows = _evaluated(
        [(genre, _rows(genre, [0.99])), (language, _rows(language, [0.5]))]
    )
    unsupervised_row = table.filter(~pl.col("uses_labels")).row(0, named=True)
    assert best_training_seed(unsupervised_row, representations, rows) is language


def test_the_interactive_map_goes_to_the_best_model_not_the_first_one():
    weak, strong = _representation("ae"), _representation("conv_vae")
    table, representations, rows = _evaluated(
        [(weak, _rows(weak, [0.2])), (strong, _rows(strong, [0.8]))]
    )
    assert map_representation(table, representations, rows) is strong


def test_without_trained_models_the_interactive_map_goes_to_the_best_baseline():
    pca, handcrafted = _representation("pca"), _representation("handcrafted")
    table, representations, rows = _evaluated(
        [(pca, _rows(pca, [0.2])), (handcrafted, _rows(handcrafted, [0.8]))]
    )
    assert map_representation(table, representations, rows) is handcrafted


def _record(
    objective: str = "nmi", value: float = 0.5, fingerprint: str = "data"
) -> ChampionRecord:
    return ChampionRecord(objective=objective, value=value, fingerprint=fingerprint)


@pytest.mark.parametrize(
    ("current", "candidate", "replaced"),
    [
        (None, _record(), True),
        (_record(value=0.5), _record(value=0.6), True),
        (_record(value=0.5), _record(value=0.4), False),
        (_record(value=0.5), _record(value=0.5), False),  # a tie keeps the champion
        (_record("davies_bouldin", 1.0), _record("davies_bouldin", 0.8), True),
        (_record("davies_bouldin", 1.0), _record("davies_bouldin", 1.2), False),
        (_record("nmi_language", 0.3), _record("nmi_language", 0.4), True),
        (_record("silhouette", 0.9), _record("nmi", 0.1), True),  # another objective
        (_record(value=0.9, fingerprint="old"), _record(value=0.1), True),  # other data
    ],
)
def test_the_champion_is_replaced_only_when_better_on_the_same_objective_and_data(
    current: ChampionRecord | None, candidate: ChampionRecord, replaced: bool
) -> None:
    assert should_replace(current, candidate) is replaced


def test_an_unknown_objective_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="ranked metrics"):
        should_replace(_record("loss", 1.0), _record("loss", 0.5))


# ------------------------------------------------------------------------------- the package


@pytest.fixture
def trained_workspace(tmp_path: Path) -> tuple[Workspace, Labels]:
    """A work dir with one trained mlp_vae (card, weights, latents) and its feature manifest."""
    from models.zoo import build_model

    workspace = Workspace.open(tmp_path / "work")
    model = build_model("mlp_vae", input_shape=(8,))
    folder = workspace.models_root / "mlp_vae-seed0"
    card = ModelCard(
        model="mlp_vae",
        config=model.config.model_dump(mode="json"),
        input_shape=(8,),
        feature_key="features-key",
        input_kind="vector",
        method="mlp_vae",
        run_id="run-1",
        fingerprint="data",
    )
    save_trained_model(model, card, folder)
    rng = np.random.default_rng(0)
    track_ids = [f"t{i:02d}" for i in range(12)]
    mu = np.concatenate([rng.normal(-3, 0.1, (6, 4)), rng.normal(3, 0.1, (6, 4))])
    write_latents(
        TrackLatents(track_ids=track_ids, mu=mu.astype(np.float32), logvar=np.zeros_like(mu)),
        folder / "latents.parquet",
    )
    pl.DataFrame(
        {
            "track_id": track_ids,
            "status": ["ok"] * len(track_ids),
            "title": [f"Song {i}" for i in range(len(track_ids))],
        }
    ).write_parquet(workspace.tracks_table)
    (workspace.feature_store("features-key") / "feature_config.json").write_text(
        json.dumps({"config": {}, "summary_names": []})
    )
    labels = Labels(
        track_ids=track_ids[:10],  # two tracks without labels
        genre=["rock"] * 5 + ["jazz"] * 5,
        language=[None] * 10,
    )
    return workspace, labels


def test_trained_models_are_found_with_their_card_facts(trained_workspace) -> None:
    workspace, _ = trained_workspace
    (workspace.models_root / "unfinished").mkdir()  # no card, no latents: left out
    [found] = trained_representations(workspace)
    assert (found.method, found.features, found.uses_labels, found.run_id) == (
        "mlp_vae",
        "default",
        False,
        "run-1",
    )
    assert found.model_dir == workspace.models_root / "mlp_vae-seed0"
    assert found.standardize is False  # a VAE's latent units are comparable


def test_the_champion_package_ships_the_clustering_of_the_clusters_table(
    trained_workspace,
) -> None:
    workspace, labels = trained_workspace
    [representation] = trained_representations(workspace)
    clustering = fit_champion_clustering.fn(
        representation, algorithm="gmm", n_clusters=2, labels=labels, workspace=workspace
    )
    files = write_champion_package(workspace, clustering)
    # the package also shows the model's signature and input example in MLflow
    assert [path.name for path in files] == [*CHAMPION_FILES, *CHAMPION_DESCRIPTION_FILES]
    assert all(path.parent == workspace.champion_dir and path.is_file() for path in files)
    assert ModelCard.read(workspace.champion_dir).run_id == "run-1"
    shipped = fitted_from_json((workspace.champion_dir / CLUSTERING_FILE).read_text())
    assert shipped == clustering.fitted
    reference = pl.read_parquet(workspace.champion_dir / REFERENCE_FILE)
    assert reference.columns == [
        "track_id",
        "cluster",
        "genre",
        "language",
        "title",
        "artist",
        "path",
        "mu",
    ]
    assert reference["cluster"].n_unique() == 2
    assert reference["genre"].null_count() == 2
    assert reference.filter(pl.col("track_id") == "t03")["title"].to_list() == ["Song 3"]
    # One numbering: predict's reference, the people's table and the shipped state agree.
    people = clustering.read().select("track_id", "cluster")
    assert reference.select("track_id", "cluster").sort("track_id").equals(people.sort("track_id"))
    assigned, _ = assign(shipped, np.asarray(reference["mu"].to_list()))
    assert assigned.tolist() == reference["cluster"].to_list()


def test_only_trained_models_can_be_packaged(trained_workspace) -> None:
    workspace, _ = trained_workspace
    clustering = ChampionClustering(
        representation=_representation("pca"),
        algorithm="kmeans",
        n_clusters=2,
        fitted_state="{}",
        table=workspace.clusters_table.with_suffix(".parquet"),
    )
    with pytest.raises(ValueError, match="no model folder"):
        write_champion_package(workspace, clustering)
