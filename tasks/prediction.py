"""Prediction with the registered champion: new tracks -> latents -> clusters + nearest tracks.

A champion version (`registry.champion.promote`) is self-contained: the MLflow model is a
`models.serving.LatentEncoder` (crops -> latent means) and its extra files are

- `model.json`: the model description (model name, input_kind, input_shape, feature_key,
  condition_classes, default_condition, lyrics_dim, ...);
- `feature_config.json`: `{"config": FeatureConfig fields, "summary_names": [...]}`, the
  features the model was trained on, so new tracks are ingested with the same settings;
- `clustering.json`: the fitted clustering (`tasks.clustering.fitted_to_json`);
- `reference.parquet`: the collection's track latents (track_id, cluster, genre, language, mu).

A new track's latent is the mean over its crops of the encoder's latent means (as in training,
`tasks.training.encode_tracks`); it is assigned with `tasks.clustering.assign` and compared to the
reference latents in the clustering's standardised space (the space the clusters live in).

Lyrics: a multimodal champion encodes audio alone when a track has no lyrics (its fusion masks
the missing modality). New lyrics are only fed to it when they can be embedded by the very
encoder it was trained with (`lyrics_plan`); the offline char n-gram encoder is fitted on the
training corpus (TF-IDF + SVD), so it cannot embed new text into the same space.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from registry.models import download_model_files, load_torch_model, version_by_alias
from tasks.audio import AUDIO_EXTENSIONS
from tasks.clustering import NOISE_LABEL, assign, fitted_from_json
from tasks.features import FeatureConfig
from tasks.ingest import feature_path
from tasks.lyrics.embedding import CHAR_NGRAM_KIND, ResolvedEncoder, embeddings_sidecar
from tasks.workspace import Workspace

CHAMPION_FILES = ("model.json", "feature_config.json", "clustering.json", "reference.parquet")
MODEL_URI_SCHEMES = ("models:/", "runs:/")
DEFAULT_ALIAS = "champion"
NEAREST_SEPARATOR = "; "
MULTIMODAL_MODEL = "multimodal_vae"
NO_LYRICS_CONDITION = "none"  # the condition class training gave tracks without lyrics
# Crops encoded per forward pass: bounds memory for long tracks with many crops.
CROPS_PER_BATCH = 256

PREDICTION_SCHEMA = {
    "path": pl.String,
    "track_id": pl.String,
    "cluster": pl.Int64,
    "score": pl.Float64,
    "score_kind": pl.String,
    "nearest_tracks": pl.String,
    "used_lyrics": pl.Boolean,
    "reason": pl.String,
}
"""Columns of the predictions table. `cluster` is null for a quarantined file (its `reason` says
why) and -1 for a DBSCAN noise point; `score` is the distance to the assigned cluster in
standardised latent units (k-means, agglomerative, DBSCAN; lower = closer) or the posterior
probability of the assigned component (GMM; higher = surer), as `score_kind` says;
`nearest_tracks` the ids of the closest reference tracks of the collection, nearest first."""


class PredictionError(ValueError):
    """A prediction input cannot be used; the message names it and says what to do."""


def resolve_model_uri(model: str) -> str:
    """The MLflow URI of `model`: `NAME@ALIAS` -> `models:/NAME@ALIAS`, a bare `NAME` ->
    `models:/NAME@champion`; `models:/...` and `runs:/...` URIs are returned as they are.

    Raises:
        PredictionError: an empty name or one with spaces or slashes that is not a URI.
    """
    model = model.strip()
    if model.startswith(MODEL_URI_SCHEMES):
        return model
    name, _, alias = model.partition("@")
    alias = alias or DEFAULT_ALIAS
    if not name or any(c.isspace() or c in "/:" for c in name + alias):
        raise PredictionError(
            f"--model {model!r}: give NAME@ALIAS (e.g. vaemusic@champion), a models:/ URI or "
            "a runs:/ URI"
        )
    return f"models:/{name}@{alias}"


def model_version_of(model_uri: str) -> str | None:
    """Registered version behind a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI, else None.

    Raises:
        PredictionError: the alias does not exist (no champion registered yet, or a typo).
    """
    if not model_uri.startswith("models:/"):
        return None
    target = model_uri.removeprefix("models:/")
    if "@" in target:
        name, alias = target.split("@", 1)
        version = version_by_alias(name, alias)
        if version is None:
            raise PredictionError(
                f"no registered model version {name}@{alias}: run the evaluation (python -m "
                "flows evaluate DATA, or python -m flows run) to register a champion first"
            )
        return str(version.version)
    name, _, version_number = target.partition("/")
    return version_number or None


@dataclass(frozen=True)
class ChampionPackage:
    """A downloaded champion: the MLflow model folder and what its extra files say.

    description: model.json. feature_config: the FeatureConfig the model was trained on.
    clustering: the fitted clustering state for `tasks.clustering.assign`.
    reference: path of reference.parquet (the collection's track latents).
    """

    model_uri: str
    version: str | None
    folder: Path
    description: dict[str, Any]
    feature_config: FeatureConfig
    clustering: dict[str, Any]
    reference: Path

    @property
    def input_kind(self) -> str:
        return self.description["input_kind"]

    @property
    def uses_lyrics(self) -> bool:
        return self.description["model"] == MULTIMODAL_MODEL

    @property
    def uses_language_condition(self) -> bool:
        """A conditional model whose condition is the lyrics language (the unsupervised CVAE)."""
        return bool(self.description.get("condition_classes")) and not self.description.get(
            "uses_labels", False
        )


def _find_extra_file(folder: Path, name: str) -> Path:
    """MLflow 3 keeps `extra_files` under `<model>/extra_files/`; older layouts at the root."""
    for candidate in (folder / "extra_files" / name, folder / name):
        if candidate.is_file():
            return candidate
    found = sorted(folder.rglob(name))
    if found:
        return found[0]
    raise PredictionError(
        f"model at {folder} has no {name}: it is not a champion package (register one with the "
        "evaluation flow, which logs the clustering and reference latents with the model)"
    )


def read_champion_package(model_uri: str, version: str | None, folder: Path) -> ChampionPackage:
    """Read the extra files of a downloaded champion folder (see module docstring)."""
    files = {name: _find_extra_file(folder, name) for name in CHAMPION_FILES}
    features = json.loads(files["feature_config.json"].read_text())
    return ChampionPackage(
        model_uri=model_uri,
        version=version,
        folder=folder,
        description=json.loads(files["model.json"].read_text()),
        feature_config=FeatureConfig(**features["config"]),
        clustering=fitted_from_json(files["clustering.json"].read_text()),
        reference=files["reference.parquet"],
    )


def fetch_champion(model_uri: str, version: str | None, destination: Path) -> ChampionPackage:
    """Download the model at `model_uri` (registered `version`, see `model_version_of`) into
    `destination` (emptied first) and read its extra files.

    Raises:
        PredictionError: the model is not a champion package.
    """
    if destination.exists():
        shutil.rmtree(destination)  # a stale file of another version must never be read
    destination.mkdir(parents=True)
    folder = download_model_files(model_uri, destination)
    return read_champion_package(model_uri, version, folder)


fetch_champion_task = task(
    fetch_champion, name="fetch champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2
)


def prediction_source(data: Path, workspace: Workspace) -> Path:
    """What to ingest: a folder or manifest as given; one audio file becomes a one-row manifest
    (`WORKSPACE/inputs/single_file.csv`), since the collection discovery reads folders and
    manifests only.

    Raises:
        PredictionError: `data` does not exist.
    """
    data = Path(data).expanduser().resolve()
    if not data.exists():
        raise PredictionError(
            f"{data} not found: give an audio file, a folder of audio or a manifest"
        )
    if data.is_file() and data.suffix.lower() in AUDIO_EXTENSIONS:
        manifest = workspace.root / "inputs" / "single_file.csv"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"audio_path": [str(data)], "track_id": [data.stem]}).write_csv(manifest)
        return manifest
    return data


@dataclass(frozen=True)
class LyricsPlan:
    """Whether new lyrics are fed to a multimodal champion, and the one-line reason."""

    use_lyrics: bool
    message: str


def trained_lyrics_encoder_id(description: dict[str, Any], collection_root: Path) -> str | None:
    """Which lyrics encoder the champion was trained with.

    `model.json` field `lyrics_encoder_id` when it has one; else the encoder of the collection's
    lyrics embeddings in `collection_root`, but only when that work dir holds the very data the
    champion was trained on (same fingerprint). None when neither tells.
    """
    if description.get("lyrics_encoder_id"):
        return str(description["lyrics_encoder_id"])
    fingerprint_file = collection_root / "fingerprint.json"
    sidecar = embeddings_sidecar(collection_root / "lyrics_embeddings.parquet")
    if not (fingerprint_file.is_file() and sidecar.is_file()):
        return None
    fingerprint = json.loads(fingerprint_file.read_text()).get("fingerprint")
    if not fingerprint or fingerprint != description.get("fingerprint"):
        return None
    return json.loads(sidecar.read_text()).get("encoder_id") or None


def lyrics_plan(
    description: dict[str, Any], trained_encoder_id: str | None, available: ResolvedEncoder
) -> LyricsPlan:
    """Decide whether new lyrics can go into the champion's encoder.

    Only a multimodal champion reads lyrics; it can only use new lyrics embedded by the encoder
    it was trained with: the same transformer (same weights digest, chunking, normalisation). The
    char n-gram encoder is refitted on each corpus, so its vectors for new text live in another
    space. Everything else encodes the audio alone, which the model supports (lyrics masked).
    """
    if description.get("model") != MULTIMODAL_MODEL:
        return LyricsPlan(False, f"{description.get('model')} reads audio only")
    if trained_encoder_id is None:
        return LyricsPlan(
            False,
            "cannot tell which lyrics encoder the champion was trained with (model.json has no "
            "lyrics_encoder_id and the work dir holds other data); encoding audio only",
        )
    if trained_encoder_id.startswith(CHAR_NGRAM_KIND):
        return LyricsPlan(
            False,
            "the champion's lyrics encoder is the offline char n-gram TF-IDF + SVD fitted on the "
            "training collection, which cannot embed new lyrics in the same space; encoding "
            "audio only (lyrics masked)",
        )
    if available.encoder_id != trained_encoder_id:
        return LyricsPlan(
            False,
            f"the lyrics encoder available here ({available.encoder_id}) is not the one the "
            f"champion was trained with ({trained_encoder_id}); encoding audio only",
        )
    return LyricsPlan(True, f"lyrics embedded with {trained_encoder_id}, as in training")


@dataclass(frozen=True)
class SideInputs:
    """Per-track extras for the encoder, aligned with the tracks being encoded.

    lyrics: [shape=(n, L) float32] embeddings with lyrics_mask [shape=(n,) bool] (multimodal).
    condition: [shape=(n,) int64] condition class per track (language CVAE).
    from_lyrics: [shape=(n,) bool] whether the track's lyrics informed its encoding.
    """

    lyrics: np.ndarray | None = None
    lyrics_mask: np.ndarray | None = None
    condition: np.ndarray | None = None
    from_lyrics: np.ndarray | None = None


def language_conditions(
    description: dict[str, Any], languages: list[str | None], has_lyrics: list[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Condition class of each track for a language-conditioned CVAE, as training assigned it.

    Training gave tracks without lyrics the class "none"; a track with lyrics gets its detected
    language. A language (or "none") the model never saw gets the model's default condition (the
    most frequent training class). Returns (conditions [shape=(n,) int64], from_lyrics
    [shape=(n,) bool]).
    """
    classes = list(description["condition_classes"])
    default = int(description.get("default_condition", 0))
    conditions, from_lyrics = [], []
    for language, has in zip(languages, has_lyrics, strict=True):
        value = (language or NO_LYRICS_CONDITION) if has else NO_LYRICS_CONDITION
        known = value in classes
        conditions.append(classes.index(value) if known else default)
        from_lyrics.append(bool(has and known and value != NO_LYRICS_CONDITION))
    return np.asarray(conditions, dtype=np.int64), np.asarray(from_lyrics, dtype=bool)


_ARRAY_BY_KIND = {"vector": "crop_stats", "spectrogram": "logmel"}


def _crops_of(workspace: Workspace, feature_key: str, sha256: str, input_kind: str) -> np.ndarray:
    with np.load(feature_path(workspace, feature_key, sha256)) as data:
        return np.asarray(data[_ARRAY_BY_KIND[input_kind]], dtype=np.float32)


def encode_new_tracks(
    encoder: torch.nn.Module,
    description: dict[str, Any],
    workspace: Workspace,
    shas: list[str],
    side: SideInputs | None = None,
) -> np.ndarray:
    """Track latents of new tracks: the mean over each track's crops of the encoder's means.

    Args:
        encoder: a `LatentEncoder` (as registered); its `.model` is used directly when lyrics
            are given (the registered forward takes audio only).
        description: the champion's model.json (input_kind, input_shape, feature_key).
        workspace: where the tracks' features are (`tasks.ingest.feature_path`).
        shas: content hash of each track, in output order.
        side: lyrics (multimodal) or conditions (CVAE), aligned with `shas`.

    Returns:
        np.ndarray [shape=(len(shas), latent_dim), float32].

    Raises:
        PredictionError: a track's crops do not have the shape the model was trained on (the
            features differ from training).
    """
    side = side or SideInputs()
    expected = tuple(description["input_shape"])
    input_kind, feature_key = description["input_kind"], description["feature_key"]
    encoder.eval()
    latents = []
    for row, sha in enumerate(shas):
        crops = _crops_of(workspace, feature_key, sha, input_kind)
        if tuple(crops.shape[1:]) != expected or crops.shape[0] == 0:
            raise PredictionError(
                f"track {sha[:12]} has crops of shape {crops.shape}, but the champion takes "
                f"(crops, {', '.join(map(str, expected))}); ingest with its feature_config.json"
            )
        means = []
        for start in range(0, crops.shape[0], CROPS_PER_BATCH):
            x = torch.from_numpy(crops[start : start + CROPS_PER_BATCH])
            n = x.shape[0]
            with torch.no_grad():
                if side.lyrics is not None and side.lyrics_mask is not None:
                    lyrics = torch.from_numpy(side.lyrics[row : row + 1].astype(np.float32))
                    mask = torch.from_numpy(side.lyrics_mask[row : row + 1].astype(bool))
                    batch = {"x": x, "lyrics": lyrics.expand(n, -1), "lyrics_mask": mask.expand(n)}
                    means.append(encoder.model.embed(batch))
                elif side.condition is not None:
                    condition = torch.full((n,), int(side.condition[row]), dtype=torch.long)
                    means.append(encoder(x, condition))
                else:
                    means.append(encoder(x))
        latents.append(torch.cat(means).float().mean(dim=0).numpy())
    if not latents:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(latents).astype(np.float32)


def encode_with_champion(
    model_folder: Path,
    description: dict[str, Any],
    workspace: Workspace,
    track_ids: list[str],
    shas: list[str],
    side: SideInputs | None = None,
) -> Path:
    """Load the champion encoder from its downloaded folder, encode the tracks and write
    `WORKSPACE/predict_latents.parquet` (track_id, mu); return its path."""
    encoder = load_torch_model(str(model_folder))
    latents = encode_new_tracks(encoder, description, workspace, shas, side)
    path = workspace.root / "predict_latents.parquet"
    pl.DataFrame(
        {"track_id": track_ids, "mu": [row.tolist() for row in latents]},
        schema={"track_id": pl.String, "mu": pl.List(pl.Float64)},
    ).write_parquet(path)
    return path


encode_with_champion_task = task(
    encode_with_champion, name="encode with champion", cache_policy=NO_CACHE
)


def nearest_reference_tracks(
    latents: np.ndarray,
    reference_latents: np.ndarray,
    reference_ids: list[str],
    clustering: dict[str, Any],
    k: int,
) -> list[list[str]]:
    """Ids of the `k` reference tracks nearest to each latent, nearest first.

    Distances are Euclidean in the clustering's standardised space (its stored per-dimension mean
    and scale), the space the clusters were found in, so no wide latent dimension dominates.

    Args:
        latents: [shape=(m, d)] new tracks. reference_latents: [shape=(n, d)].
        k: neighbours per track (capped at n).
    """
    if latents.shape[0] == 0 or not reference_ids or k < 1:
        return [[] for _ in range(latents.shape[0])]
    mean = np.asarray(clustering["mean"], dtype=np.float64)
    scale = np.asarray(clustering["scale"], dtype=np.float64)
    new = (np.asarray(latents, dtype=np.float64) - mean) / scale
    reference = (np.asarray(reference_latents, dtype=np.float64) - mean) / scale
    squared = (
        np.sum(new**2, axis=1, keepdims=True)
        - 2.0 * new @ reference.T
        + np.sum(reference**2, axis=1)[None, :]
    )
    k = min(k, len(reference_ids))
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return [[reference_ids[i] for i in row] for row in order]


def predictions_table(
    tracks: pl.DataFrame,
    latents_path: Path | None,
    package: ChampionPackage,
    *,
    n_nearest: int,
    used_lyrics: dict[str, bool] | None = None,
) -> pl.DataFrame:
    """One row per ingested file (`PREDICTION_SCHEMA`), in the order of `tracks`.

    Args:
        tracks: the predict work dir's track table (track_id, path, status, reason).
        latents_path: `predict_latents.parquet` of the ok tracks (None when there is none).
        package: the champion (clustering state and reference latents).
        n_nearest: reference tracks listed per track.
        used_lyrics: track_id -> whether its lyrics informed the encoding.
    """
    used_lyrics = used_lyrics or {}
    score_kind = package.clustering.get("score_kind", "distance")
    assigned: dict[str, tuple[int, float, str]] = {}
    if latents_path is not None:
        latents_table = pl.read_parquet(latents_path)
        if latents_table.height:
            mu = np.asarray(latents_table["mu"].to_list(), dtype=np.float64)
            labels, scores = assign(package.clustering, mu)
            reference = pl.read_parquet(package.reference)
            nearest = nearest_reference_tracks(
                mu,
                np.asarray(reference["mu"].to_list(), dtype=np.float64),
                reference["track_id"].to_list(),
                package.clustering,
                n_nearest,
            )
            for track_id, label, score, near in zip(
                latents_table["track_id"].to_list(), labels, scores, nearest, strict=True
            ):
                assigned[track_id] = (int(label), float(score), NEAREST_SEPARATOR.join(near))
    rows = []
    for row in tracks.iter_rows(named=True):
        result = assigned.get(row["track_id"])
        ok = row["status"] == "ok" and result is not None
        rows.append(
            {
                "path": row["path"],
                "track_id": row["track_id"],
                "cluster": result[0] if ok else None,
                "score": result[1] if ok else None,
                "score_kind": score_kind if ok else None,
                "nearest_tracks": result[2] if ok else None,
                "used_lyrics": used_lyrics.get(row["track_id"], False) if ok else None,
                "reason": None if ok else (row["reason"] or "not encoded"),
            }
        )
    return pl.DataFrame(rows, schema=PREDICTION_SCHEMA)


def format_predictions(table: pl.DataFrame) -> str:
    """The predictions as a text table for the terminal (every row, paths shown by file name)."""
    shown = table.with_columns(
        pl.col("path").map_elements(lambda p: Path(p).name, return_dtype=pl.String),
        pl.col("score").round(4),
    ).drop("track_id", "score_kind")
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=80,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        return str(shown)


def cluster_counts(table: pl.DataFrame) -> dict[str, int]:
    """Tracks per assigned cluster (noise as 'noise'), for logging."""
    counts = table.filter(pl.col("cluster").is_not_null()).group_by("cluster").len().sort("cluster")
    return {
        ("noise" if c == NOISE_LABEL else f"cluster_{c}"): int(n) for c, n in counts.iter_rows()
    }
