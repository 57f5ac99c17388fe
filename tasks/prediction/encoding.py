"""New tracks -> track latents with the champion's encoder.

A new track's latent is the mean over its crops of the encoder's latent means, as in training
(`tasks.training.trainer.encode_tracks`). The crops are those the champion was trained on (its
card's `inputs`): the feature store's, or the pretrained network's patch embeddings of its
network configuration; a card written before the pretrained inputs existed read descriptors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from torch import Tensor

from models.serving import LatentEncoder
from tasks.audio.decoding import AudioConfig
from tasks.audio.ingest import IngestRecord, usable_tracks
from tasks.audio.pretrained_store import store_pretrained
from tasks.core.workspace import Workspace
from tasks.prediction.champion import ChampionPackage, PredictionError
from tasks.prediction.inputs import SideInputs
from tasks.training.data import read_track_crops
from tasks.training.model_card import ModelCard

# Crops encoded per forward pass: bounds memory for long tracks with many crops.
CROPS_PER_BATCH = 256


def _crop_means(encoder: LatentEncoder, crops: np.ndarray, side: SideInputs, row: int) -> Tensor:
    """Latent means of one track's crops [shape=(n_crops, latent_dim)], with the track's side
    input (row `row` of `side`)."""
    means = []
    for start in range(0, crops.shape[0], CROPS_PER_BATCH):
        x = torch.from_numpy(crops[start : start + CROPS_PER_BATCH])
        n = x.shape[0]
        with torch.no_grad():
            if side.lyrics is not None and side.lyrics_mask is not None:
                # The registered forward takes audio only; lyrics go to the model directly.
                lyrics = torch.from_numpy(side.lyrics[row : row + 1].astype(np.float32))
                mask = torch.from_numpy(side.lyrics_mask[row : row + 1].astype(bool))
                batch = {"x": x, "lyrics": lyrics.expand(n, -1), "lyrics_mask": mask.expand(n)}
                means.append(encoder.model.embed(batch))
            elif side.condition is not None:
                condition = torch.full((n,), int(side.condition[row]), dtype=torch.long)
                means.append(encoder(x, condition))
            else:
                means.append(encoder(x))
    return torch.cat(means)


def _track_crops(card: ModelCard, workspace: Workspace, sha: str) -> np.ndarray:
    """One new track's crops as the champion takes them; PredictionError when their shape is
    not the one it was trained on."""
    crops = read_track_crops(
        workspace,
        card.feature_key,
        sha,
        card.input_kind,
        inputs=card.inputs,
        pretrained_key=card.pretrained_key,
    )
    if tuple(crops.shape[1:]) != card.input_shape or crops.shape[0] == 0:
        raise PredictionError(
            f"track {sha[:12]} has crops of shape {crops.shape}, but the champion takes "
            f"(crops, {', '.join(map(str, card.input_shape))}); ingest with its "
            "feature_config.json"
        )
    return crops


def ensure_pretrained_inputs(
    card: ModelCard, workspace: Workspace, paths: list[str], shas: list[str], audio: AudioConfig
) -> int:
    """Store the pretrained features a champion on pretrained inputs reads, with its own network
    configuration (the one on its card), for the new tracks that lack them; returns how many were
    computed (0 for a champion on descriptors).

    The predict work dir's ingest ran the network with the ingest's own settings, which need not
    be the champion's (a quick-profile champion caps the patches per track): the features are
    computed here by the same code, never read from another configuration's store.

    Raises:
        PredictionError: the card names pretrained inputs but no network configuration.
        WeightsMissing: the network's weights are not installed.
    """
    if card.inputs == "descriptors":
        return 0
    if card.pretrained is None or card.pretrained_key is None:
        raise PredictionError(
            f"the champion reads {card.inputs} features but its model.json names no network "
            "configuration; retrain and re-evaluate to register a new champion"
        )
    if card.pretrained.key != card.pretrained_key:
        raise PredictionError(
            f"the champion was trained on {card.inputs} features {card.pretrained_key}, but the "
            f"installed weights give {card.pretrained.key} (the weights changed since); "
            "retrain and re-evaluate to register a new champion"
        )
    return store_pretrained(paths, shas, audio, card.pretrained, workspace)


def encode_new_tracks(
    encoder: LatentEncoder,
    card: ModelCard,
    workspace: Workspace,
    shas: list[str],
    side: SideInputs | None = None,
) -> np.ndarray:
    """Track latents of new tracks: the mean over each track's crops of the encoder's means.

    Args:
        encoder: the champion's `LatentEncoder`.
        card: the champion's model card (input_kind, inputs, input_shape and store keys).
        workspace: where the tracks' features are (`Workspace.feature_file`, and
            `Workspace.pretrained_file` for a champion on pretrained inputs).
        shas: content hash of each track, in output order.
        side: lyrics (multimodal) or conditions (CVAE), aligned with `shas`.

    Returns:
        np.ndarray [shape=(len(shas), latent_dim), float32].

    Raises:
        PredictionError: a track's crops do not have the shape the model was trained on (the
            features differ from training).
    """
    side = side or SideInputs()
    encoder.eval()
    latents = []
    for row, sha in enumerate(shas):
        crops = _track_crops(card, workspace, sha)
        latents.append(_crop_means(encoder, crops, side, row).float().mean(dim=0).numpy())
    if not latents:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(latents).astype(np.float32)


@task(name="encode with champion", cache_policy=NO_CACHE)
def encode_with_champion(
    package: ChampionPackage,
    workspace: Workspace,
    track_ids: list[str],
    shas: list[str],
    side: SideInputs | None = None,
) -> Path:
    """Rebuild the champion's encoder from its package, encode the tracks and write
    `predict_latents.parquet` (track_id, mu) in the predict work dir; return its path.

    A champion on pretrained inputs first gets the tracks' pretrained features of its own
    network configuration (`ensure_pretrained_inputs`; the files are the track table's, the
    audio settings those of the predict work dir's ingest).

    Raises:
        PredictionError: the weights do not load, or the tracks' crops do not fit the model.
    """
    if package.card.inputs != "descriptors":
        paths = dict(usable_tracks(workspace).select("sha256", "path").iter_rows())
        audio = IngestRecord.read(workspace).audio
        ensure_pretrained_inputs(package.card, workspace, [paths[s] for s in shas], shas, audio)
    latents = encode_new_tracks(package.load_encoder(), package.card, workspace, shas, side)
    path = workspace.predicted_latents
    pl.DataFrame(
        {"track_id": track_ids, "mu": [row.tolist() for row in latents]},
        schema={"track_id": pl.String, "mu": pl.List(pl.Float64)},
    ).write_parquet(path)
    return path
