"""Clustering every representation says how far it is ("clustered n/total representations") in the
flow run's log, and still returns each representation's rows in the order asked."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from prefect import flow

from tasks.evaluation.representations import (
    Labels,
    Representation,
    evaluate_representations,
    file_sha,
)
from tasks.training.representation import write_latents
from tasks.training.trainer import TrackLatents

N_REPRESENTATIONS = 12
TRACK_IDS = [f"t{i:02d}" for i in range(20)]


def representation(folder: Path, index: int) -> Representation:
    rng = np.random.default_rng(index)
    mu = rng.normal(size=(len(TRACK_IDS), 3)).astype(np.float32)
    mu[:10] += 4.0  # two blobs
    path = folder / f"r{index}.parquet"
    write_latents(TrackLatents(track_ids=TRACK_IDS, mu=mu, logvar=np.zeros_like(mu)), path)
    return Representation(
        method="pca", features=f"variant {index}", latents=path, latents_sha=file_sha(path)
    )


@flow(name="cluster-progress-test")
def cluster_all(representations: list[Representation]) -> list[list[dict]]:
    labels = Labels(track_ids=TRACK_IDS, genre=[None] * 20, language=[None] * 20)
    return evaluate_representations(
        representations, labels=labels, algorithms=["kmeans"], n_clusters=2, seeds=1
    )


def test_clustering_reports_how_many_representations_are_done(
    prefect_api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    representations = [representation(tmp_path, i) for i in range(N_REPRESENTATIONS)]
    caplog.set_level(logging.INFO, logger="prefect.flow_runs")

    rows = cluster_all(representations)

    lines = [r.getMessage() for r in caplog.records if r.name == "prefect.flow_runs"]
    found = [re.fullmatch(r"clustered (\d+)/(\d+) representations", line) for line in lines]
    counts = [(int(m[1]), int(m[2])) for m in found if m]
    assert counts[-1] == (N_REPRESENTATIONS, N_REPRESENTATIONS)
    assert [n for n, _ in counts] == sorted({n for n, _ in counts})
    assert 2 <= len(counts) <= 10
    # whatever order they finished in, the rows come back in the order asked
    assert [group[0]["features"] for group in rows] == [r.features for r in representations]
