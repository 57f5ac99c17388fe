"""Layout of a work directory: every stage reads and writes paths defined here.

A work directory holds everything derived from one data set: the track table, the decoded-audio
and feature stores, lyrics, latents and reports. Stages hand each other this object (paths and
ids), never large in-memory data, so Prefect cache keys stay small and stable.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict


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

    def feature_store(self, feature_key: str) -> Path:
        """Features of one feature configuration, one `<sha256>.npz` per file."""
        return self._dir("store", "features", feature_key)

    # lyrics
    @property
    def lyrics_table(self) -> Path:
        return self.root / "lyrics.parquet"

    @property
    def unpaired_lyrics(self) -> Path:
        return self.root / "unpaired_lyrics.csv"

    @property
    def embedding_store(self) -> Path:
        return self._dir("store", "embeddings")

    # training and evaluation
    def model_dir(self, run_name: str) -> Path:
        return self._dir("models", run_name)

    @property
    def reports(self) -> Path:
        return self._dir("reports")

    @property
    def plots(self) -> Path:
        return self._dir("reports", "plots")
