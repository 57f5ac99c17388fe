"""The pretrained network's tags that name a cluster: those whose mean probability over the
cluster's tracks stands most above the collection's mean.

The tags come from the ingest's pretrained store (`tasks.audio.pretrained_store`), not from the
model that was clustered, so every representation's clusters can be named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tasks.audio.ingest import usable_tracks
from tasks.audio.pretrained_store import PretrainedRecord, read_pretrained
from tasks.core.workspace import Workspace
from tasks.evaluation.clustering import NOISE_LABEL

TAGS_LISTED = 3
# A tag characterises a cluster when its tracks' mean probability is at least MIN_TAG_LIFT times
# the collection's mean and at least MIN_TAG_GAIN above it: the ratio alone would crown rare tags
# whose probabilities are noise (0.004 against 0.002), the difference alone the tags every
# track has a lot of.
MIN_TAG_LIFT = 1.25
MIN_TAG_GAIN = 0.02
TAG_JOINER = ", "


@dataclass(frozen=True)
class TrackTags:
    """The pretrained network's tag probabilities of each track.

    probabilities: np.ndarray [shape=(n_tracks, n_tags)], each track's mean over its patches,
    rows in the order of `track_ids`, columns in the order of `names`.
    """

    track_ids: list[str]
    probabilities: np.ndarray
    names: list[str]

    def of(self, track_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rows of `track_ids` that have tags [shape=(m,) int], their probabilities
        [shape=(m, n_tags)])."""
        index = {track_id: row for row, track_id in enumerate(self.track_ids)}
        known = [(i, index[t]) for i, t in enumerate(track_ids) if t in index]
        rows = np.asarray([i for i, _ in known], dtype=np.int64)
        return rows, self.probabilities[[r for _, r in known]]


def read_track_tags(workspace: Workspace) -> TrackTags | None:
    """The tag probabilities of the work dir's usable tracks, from the pretrained store of its
    last ingest; None when it has none (ingested before pretrained features existed)."""
    record = PretrainedRecord.read(workspace)
    if record is None:
        return None
    tracks = usable_tracks(workspace)
    probabilities = [
        read_pretrained(workspace, record.key, sha).tags_mean for sha in tracks["sha256"]
    ]
    return TrackTags(
        track_ids=tracks["track_id"].to_list(),
        probabilities=np.stack(probabilities).astype(np.float64)
        if probabilities
        else np.zeros((0, len(record.tag_names))),
        names=list(record.tag_names),
    )


def characteristic_tags(
    labels: np.ndarray, probabilities: np.ndarray, names: Sequence[str], *, top: int = TAGS_LISTED
) -> dict[int, list[str]]:
    """Each cluster's characteristic tags, most characteristic first.

    A tag's lift in a cluster is the mean probability over the cluster's tracks divided by the
    mean over every track given (noise included: it is part of the collection). Tags with a lift
    of at least `MIN_TAG_LIFT` and a mean at least `MIN_TAG_GAIN` above the collection's are
    ranked by lift; the first `top` are kept (fewer, or none, when fewer stand out).

    Args:
        labels: [shape=(n,)] cluster ids; -1 (noise) gets no entry.
        probabilities: [shape=(n, n_tags)] tag probabilities of the same tracks.
        names: [n_tags] tag names.
    """
    collection = probabilities.mean(axis=0)
    found: dict[int, list[str]] = {}
    for cluster_id in np.unique(labels):
        if cluster_id == NOISE_LABEL:
            continue
        mean = probabilities[labels == cluster_id].mean(axis=0)
        lift = mean / np.maximum(collection, 1e-12)
        standing_out = (lift >= MIN_TAG_LIFT) & (mean - collection >= MIN_TAG_GAIN)
        order = [i for i in np.argsort(-lift, kind="stable") if standing_out[i]]
        found[int(cluster_id)] = [names[i] for i in order[:top]]
    return found


def cluster_tags_column(
    track_ids: Sequence[str], labels: np.ndarray, tags: TrackTags | None
) -> list[str | None]:
    """The `cluster_tags` of each row (see `CLUSTER_TABLE_SCHEMA`)."""
    column: list[str | None] = [None] * len(track_ids)
    if tags is None:
        return column
    rows, probabilities = tags.of(track_ids)
    if len(rows) == 0:
        return column
    per_cluster = characteristic_tags(labels[rows], probabilities, tags.names)
    for row, cluster_id in enumerate(labels.tolist()):
        if cluster_id in per_cluster:
            column[row] = TAG_JOINER.join(per_cluster[cluster_id])
    return column
