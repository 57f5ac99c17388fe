"""Layout of a work directory: every stage reads and writes paths defined here.

A work directory holds everything derived from one data set: the track table, the decoded-audio
and feature stores, lyrics, latents and reports. Stages hand each other this object (paths and
ids), never large in-memory data, so Prefect cache keys stay small and stable.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# The work directory field of every flow config, declared once.
DEFAULT_WORKDIR = Path("workdir")
WorkdirPath = Annotated[
    Path,
    Field(description="Work directory: the tables, stores, models and reports of a collection."),
]


class Workspace(BaseModel):
    """Paths of one work directory.

    `store_id` is a random id written when the directory is first created. It is part of every
    cached task's inputs, so deleting the work directory also invalidates Prefect's cache instead
    of returning paths to files that no longer exist.
    """

    model_config = ConfigDict(frozen=True)

    root: Path
    store_id: str

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        """Open (creating if needed) the work directory at `root`."""
        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        marker = root / ".store_id"
        if not marker.exists():
            marker.write_text(uuid.uuid4().hex)
        return cls(root=root, store_id=marker.read_text().strip())

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # the generated demo collection (`make run` without DATA)
    @property
    def demo_data(self) -> Path:
        return self.root / "demo-data"

    # ingest
    @property
    def tracks_table(self) -> Path:
        return self.root / "tracks.parquet"

    @property
    def quarantine_report(self) -> Path:
        return self.root / "quarantine.csv"

    @property
    def fingerprint_file(self) -> Path:
        return self.root / "fingerprint.json"

    def validation_store(self, audio_key: str) -> Path:
        """What validation found per file (`<sha256>.json`) under one audio configuration."""
        return self._dir("store", "validation", audio_key)

    def validation_record(self, audio_key: str, sha256: str) -> Path:
        """What validating one file's content under one audio configuration found."""
        return self.validation_store(audio_key) / f"{sha256}.json"

    def feature_store(self, feature_key: str) -> Path:
        """Features of one feature configuration, one `<sha256>.npz` per file."""
        return self._dir("store", "features", feature_key)

    def feature_file(self, feature_key: str, sha256: str) -> Path:
        """Features of one file's content under one feature configuration."""
        return self.feature_store(feature_key) / f"{sha256}.npz"

    def feature_manifest(self, feature_key: str) -> Path:
        """The feature configuration a feature store holds (JSON)."""
        return self.feature_store(feature_key) / "feature_config.json"

    def pretrained_store(self, pretrained_key: str) -> Path:
        """Pretrained-network features of one network configuration, one `<sha256>.npz` per file
        (`tasks.audio.pretrained.PretrainedFeatures`)."""
        return self._dir("store", "pretrained", pretrained_key)

    def pretrained_file(self, pretrained_key: str, sha256: str) -> Path:
        """Pretrained-network features of one file's content under one network configuration."""
        return self.pretrained_store(pretrained_key) / f"{sha256}.npz"

    def pretrained_manifest(self, pretrained_key: str) -> Path:
        """The network configuration a pretrained store holds and its tag names (JSON)."""
        return self.pretrained_store(pretrained_key) / "pretrained_config.json"

    @property
    def pretrained_record(self) -> Path:
        """Which pretrained store the last ingest of the work dir filled (JSON)."""
        return self.root / "pretrained.json"

    # lyrics
    @property
    def lyrics_table(self) -> Path:
        return self.root / "lyrics.parquet"

    @property
    def unpaired_lyrics(self) -> Path:
        return self.root / "unpaired_lyrics.csv"

    @property
    def lyrics_embeddings(self) -> Path:
        """track_id, embedding (list[float32]), encoder_id per track with lyrics."""
        return self.root / "lyrics_embeddings.parquet"

    @property
    def embedding_store(self) -> Path:
        return self._dir("store", "embeddings")

    # training
    @property
    def models_root(self) -> Path:
        """One folder per trained model (`model_dir`)."""
        return self._dir("models")

    def model_dir(self, run_name: str) -> Path:
        return self._dir("models", run_name)

    def model_latents(self, run_name: str) -> Path:
        """Track latents of one trained model: track_id, mu, logvar (, mixture_cluster)."""
        return self.model_dir(run_name) / "latents.parquet"

    def model_history(self, run_name: str) -> Path:
        """Per-epoch loss history of one trained model (JSON: series name -> values)."""
        return self.model_dir(run_name) / "history.json"

    def crop_dataset(self, digest: str) -> Path:
        """Crops gathered from the feature store for training, one folder per selection."""
        return self._dir("datasets", digest)

    # evaluation
    def baseline_latents(self, method: str) -> Path:
        """Track vectors of one baseline representation (same layout as `model_latents`)."""
        return self._dir("baselines", method) / "latents.parquet"

    @property
    def champion_dir(self) -> Path:
        """The package that travels with the registered champion."""
        return self._dir("champion")

    @property
    def reports(self) -> Path:
        return self._dir("reports")

    @property
    def plots(self) -> Path:
        return self._dir("reports", "plots")

    # the champion's clustering, for people: songs by name, playlists, a map to listen to
    @property
    def clusters_table(self) -> Path:
        """One row per track of the champion's clustering (CSV; the same as Parquet beside it)."""
        return self.reports / "clusters.csv"

    @property
    def clusters_summary(self) -> Path:
        """A short description of each cluster (Markdown)."""
        return self.reports / "clusters.md"

    def playlist(self, cluster: int) -> Path:
        """The playlist of one cluster (M3U8, paths relative to the playlist)."""
        return self._dir("reports", "playlists") / f"cluster-{cluster:02d}.m3u8"

    @property
    def listening_map(self) -> Path:
        """The self-contained HTML map of the collection (opens from disk, plays the tracks)."""
        return self.reports / "listening_map.html"

    # tuning
    @property
    def optuna_db(self) -> Path:
        """Default Optuna storage of the work dir's studies (SQLite)."""
        return self.root / "optuna.db"

    def tuning_dir(self, study_tag: str) -> Path:
        """Files a tuning session writes for one study (plots)."""
        return self._dir("tuning", study_tag)

    # prediction: a prediction has a work dir of its own (default: the collection's predict/)
    @property
    def predictions_dir(self) -> Path:
        return self._dir("predict")

    @property
    def single_file_manifest(self) -> Path:
        """A one-row manifest for one audio file given to `predict`."""
        return self._dir("inputs") / "single_file.csv"

    @property
    def downloaded_model(self) -> Path:
        """A downloaded copy of a registered model (predict's, or evaluation's kept champion)."""
        return self.root / "model"

    @property
    def predicted_latents(self) -> Path:
        return self.root / "predict_latents.parquet"

    @property
    def predictions_table(self) -> Path:
        return self.root / "predictions.csv"
