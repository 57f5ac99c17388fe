"""Vector models trained on the pretrained network's patch embeddings (inputs="musicnn"): one
row per 3 s patch, a track's latent the mean over its patches, the card saying what was read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from pydantic import ValidationError

from tasks.audio.ingest import TRACK_SCHEMA
from tasks.audio.pretrained import PretrainedConfig, PretrainedFeatures
from tasks.audio.pretrained_store import PretrainedRecord
from tasks.core.workspace import Workspace
from tasks.training.comparison import (
    QUICK_MAX_CROPS_PER_EPOCH,
    QUICK_MAX_PATCHES,
    model_specs,
    pretrained_config,
    profile_maps,
)
from tasks.training.data import gather_crops
from tasks.training.model_card import ModelCard
from tasks.training.representation import (
    ModelSpec,
    prepare_training,
    read_latents,
    train_representation,
)
from tasks.training.trainer import TrainConfig

N_TRACKS = 8
PRETRAINED_KEY = "k" * 12


def write_pretrained_collection(root: Path, n_tracks: int = N_TRACKS) -> Workspace:
    """`n_tracks` ok tracks in two groups, 2 to 5 patches each, in a pretrained store of key
    `PRETRAINED_KEY` named by the work dir's record (what the ingest leaves)."""
    workspace = Workspace.open(root)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_tracks):
        sha = f"{i:064x}"
        centre = np.full(200, 2.0 if i % 2 else -2.0)
        patches = centre + rng.normal(size=(2 + i % 4, 200))
        PretrainedFeatures(
            patch_embeddings=patches.astype(np.float32),
            patch_tags=rng.uniform(size=(patches.shape[0], 50)).astype(np.float32),
        ).save(workspace.pretrained_file(PRETRAINED_KEY, sha))
        rows.append({"track_id": f"t{i}", "sha256": sha, "status": "ok", "genre": "g"})
    pl.DataFrame(rows).select(
        [
            pl.col(name).cast(dtype) if name in rows[0] else pl.lit(None, dtype).alias(name)
            for name, dtype in TRACK_SCHEMA.items()
        ]
    ).write_parquet(workspace.tracks_table)
    PretrainedRecord(
        key=PRETRAINED_KEY,
        config=PretrainedConfig(max_patches=4),
        tag_names=[f"tag{i}" for i in range(50)],
    ).write(workspace)
    return workspace


def musicnn_spec(model: str = "mlp_vae", **fields) -> ModelSpec:
    train = TrainConfig(epochs=3, batch_size=8, device="cpu", patience=3)
    return ModelSpec(
        model=model,
        train=train,
        inputs="musicnn",
        overrides={"latent_dim": 4, "hidden_dims": (16,)},
        **fields,
    )


def test_a_spectrogram_model_cannot_read_pretrained_embeddings() -> None:
    with pytest.raises(ValidationError, match="log-mel crops"):
        ModelSpec(model="conv_vae", inputs="musicnn")


def test_runs_on_pretrained_inputs_are_named_apart_from_those_on_descriptors() -> None:
    on_descriptors = ModelSpec(model="mlp_vae")
    on_musicnn = ModelSpec(model="mlp_vae", inputs="musicnn")
    assert on_musicnn.run_name != on_descriptors.run_name
    assert on_musicnn.features == "musicnn"
    labelled = ModelSpec(model="mlp_vae", inputs="musicnn", features_label="musicnn, beta=2")
    assert labelled.features == "musicnn, beta=2"  # not "musicnn, musicnn, beta=2"


def test_the_comparison_trains_the_vae_family_on_musicnn_with_the_quick_patch_cap() -> None:
    specs = [s for s in model_specs("quick", n_clusters=6) if s.inputs == "musicnn"]
    assert sorted((s.model, s.features) for s in specs) == [
        ("mlp_vae", "musicnn"),
        ("multimodal_vae", "musicnn, fusion=late, audio+lyrics"),
        ("multimodal_vae", "musicnn, fusion=late, audio_only"),
        ("vade", "musicnn, n_components=6"),
    ]
    assert len({s.run_name for s in model_specs("full")}) == len(model_specs("full"))
    assert pretrained_config("quick").max_patches == QUICK_MAX_PATCHES
    assert pretrained_config("full").max_patches is None
    # without lyrics, the lyrics model leaves, its architecture's controls with it (as today)
    no_lyrics = model_specs("quick", with_lyrics=False)
    assert {s.model for s in no_lyrics if s.inputs == "musicnn"} == {"mlp_vae", "vade"}


def test_each_patch_is_one_row_of_the_gathered_data_set(tmp_path: Path) -> None:
    workspace = write_pretrained_collection(tmp_path)
    shas = [f"{i:064x}" for i in range(N_TRACKS)]
    arrays = gather_crops(
        workspace,
        "fk",
        [f"t{i}" for i in range(N_TRACKS)],
        shas,
        "vector",
        inputs="musicnn",
        pretrained_key=PRETRAINED_KEY,
    )
    assert arrays.x.shape == (sum(2 + i % 4 for i in range(N_TRACKS)), 200)
    assert np.bincount(arrays.track_index).tolist() == [2 + i % 4 for i in range(N_TRACKS)]
    first = PretrainedFeatures.load(workspace.pretrained_file(PRETRAINED_KEY, shas[0]))
    np.testing.assert_array_equal(arrays.x[:2], first.patch_embeddings)


def test_a_model_trained_on_musicnn_encodes_every_track_and_its_card_says_so(
    tmp_path: Path,
) -> None:
    # given a work dir whose ingest stored pretrained features
    workspace = write_pretrained_collection(tmp_path / "work")
    torch.set_num_threads(1)
    # when an MLP-VAE is trained on them
    spec = musicnn_spec()
    output = train_representation.fn(
        spec,
        workspace,
        "fk",
        "fp",
        register=False,
        report_progress=False,
        pretrained_key=PRETRAINED_KEY,
    )
    # then every track has a latent, the two groups apart
    latents = read_latents(output.latents)
    assert latents.track_ids == [f"t{i}" for i in range(N_TRACKS)]
    assert np.isfinite(latents.mu).all()
    # and the card records the inputs and the store they came from
    card = ModelCard.read(output.model_dir)
    assert card.inputs == "musicnn"
    assert card.input_shape == (200,)
    assert card.pretrained_key == PRETRAINED_KEY
    assert card.pretrained == PretrainedConfig(max_patches=4)
    assert output.features == "musicnn, hidden_dims=(16,), latent_dim=4"


def test_training_on_another_pretrained_store_than_the_ingests_says_what_to_run(
    tmp_path: Path,
) -> None:
    workspace = write_pretrained_collection(tmp_path / "work")
    with pytest.raises(FileNotFoundError, match="run the ingest"):
        train_representation.fn(
            musicnn_spec(), workspace, "fk", "fp", register=False, pretrained_key="other"
        )


def test_a_card_written_before_pretrained_inputs_reads_as_descriptors(tmp_path: Path) -> None:
    old = {
        "model": "mlp_vae",
        "config": {},
        "input_shape": [12],
        "feature_key": "key",
        "input_kind": "vector",
        "method": "mlp_vae",
    }
    (tmp_path / ModelCard.FILE_NAME).write_text(json.dumps(old))
    card = ModelCard.read(tmp_path)
    assert card.inputs == "descriptors"
    assert card.pretrained_key is None


@pytest.mark.parametrize("cap", [None, 12])
def test_the_epoch_cap_reaches_training_and_validation_but_not_encoding(
    tmp_path: Path, cap: int | None
) -> None:
    # 12 tracks of 2 - 5 patches: 9 train, 3 validation tracks
    workspace = write_pretrained_collection(tmp_path, n_tracks=12)
    spec = musicnn_spec()
    spec = spec.model_copy(
        update={
            "train": spec.train.model_copy(
                update={"max_crops_per_epoch": cap, "validation_fraction": 0.25}
            )
        }
    )
    ready = prepare_training(spec, workspace, "fk")
    patches = np.bincount(ready.arrays.track_index)
    train, validation, every = (ready.batches[name] for name in ("train", "val", "all"))
    assert (len(ready.train_tracks), len(ready.val_tracks)) == (9, 3)
    if cap is None:
        assert train.examples_per_epoch == patches[ready.train_tracks].sum()
        assert len(validation.rows) == patches[ready.val_tracks].sum()
    else:  # 12 // 9 tracks: one patch of each per epoch; validation: one of each, fixed
        assert train.examples_per_epoch == 9
        assert np.bincount(ready.arrays.track_index[validation.rows], minlength=12)[
            ready.val_tracks
        ].tolist() == [1, 1, 1]
    assert len(every.rows) == patches.sum()  # encoding reads every patch


def test_the_quick_profile_caps_every_models_epochs_and_draws_umap_maps_only() -> None:
    assert {s.train.max_crops_per_epoch for s in model_specs("quick")} == {
        QUICK_MAX_CROPS_PER_EPOCH
    }
    assert {s.train.max_crops_per_epoch for s in model_specs("full")} == {None}
    assert profile_maps("quick") == ["umap"]
    assert profile_maps("full") == ["umap", "tsne"]
    assert profile_maps("quick", ["tsne"]) == ["tsne"]  # what the user chose stands
    assert profile_maps("full", []) == []
