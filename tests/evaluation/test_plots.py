"""Plots: every figure is written as a real, non-empty file from small inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs

from tasks.evaluation import plots
from tasks.evaluation.report import build_comparison_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n_samples=40, centers=3, n_features=5, random_state=0)


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    rows = []
    for method, features, uses_labels in [
        ("beta_vae", "beta=0.5", False),
        ("beta_vae", "beta=4", False),
        ("beta_vae", "beta=16", False),
        ("pca", "audio_only", False),
        ("cvae", "audio+lyrics", True),
    ]:
        for offset, algorithm in enumerate(("kmeans", "gmm")):
            rows.append(
                {
                    "method": method,
                    "features": features,
                    "algorithm": algorithm,
                    "uses_labels": uses_labels,
                    "n_seeds": 2,
                    "silhouette": 0.2 + 0.05 * offset,
                    "silhouette_std": 0.01,
                    "calinski_harabasz": 150.0,
                    "davies_bouldin": 1.1,
                    "nmi": 0.3 + 0.1 * offset,
                    "nmi_std": 0.02,
                    "ari": 0.2,
                    "accuracy": 0.5,
                    "nmi_language": 0.1,
                }
            )
    return build_comparison_table(rows)


def test_tsne_embedding_has_one_2d_point_per_row(points) -> None:
    x, _ = points
    xy = plots.embedding_2d(x, method="tsne", seed=0)
    assert xy.shape == (len(x), 2)
    assert np.all(np.isfinite(xy))


def test_umap_embedding_works_on_few_points(points) -> None:
    x, _ = points
    xy = plots.embedding_2d(x[:12], method="umap", seed=0)
    assert xy.shape == (12, 2)
    assert np.all(np.isfinite(xy))


def test_embedding_rejects_too_few_points_and_unknown_methods(points) -> None:
    x, _ = points
    with pytest.raises(ValueError, match="at least 4 points"):
        plots.embedding_2d(x[:3], method="tsne", seed=0)
    with pytest.raises(ValueError, match="'umap' or 'tsne'"):
        plots.embedding_2d(x, method="pca", seed=0)


def test_scatter_plot_handles_unknown_and_noise(points, tmp_path: Path) -> None:
    x, y = points
    labels = np.array(["rock", "jazz", "pop"], dtype=object)[y]
    labels[:5] = None
    path = plots.scatter_plot(x[:, :2], labels, "genre", tmp_path / "genre.png")
    assert _is_png(path)
    clusters = y.astype(str)
    clusters[:3] = "-1"
    assert _is_png(plots.scatter_plot(x[:, :2], clusters, "cluster", tmp_path / "sub/cluster.png"))


def test_scatter_plot_rejects_mismatched_shapes(points, tmp_path: Path) -> None:
    x, y = points
    with pytest.raises(ValueError, match="xy must be"):
        plots.scatter_plot(x[:, :2], y[:-1].astype(str), "bad", tmp_path / "bad.png")


def test_contingency_heatmap_is_written(points, tmp_path: Path) -> None:
    _, y = points
    genres = np.array(["rock", "jazz", "pop"], dtype=object)[y]
    genres[0] = None
    clusters = (y + 1) % 3
    clusters[:4] = -1
    path = plots.contingency_heatmap(genres, clusters, "cluster x genre", tmp_path / "c.png")
    assert _is_png(path)
    with pytest.raises(ValueError, match="no point has a known class"):
        plots.contingency_heatmap([None, None], [0, 1], "empty", tmp_path / "e.png")


def test_metric_bars_and_heatmap_are_written(table, tmp_path: Path) -> None:
    assert _is_png(plots.metric_bars(table, "nmi", tmp_path / "nmi.png"))
    assert _is_png(plots.metric_bars(table, "davies_bouldin", tmp_path / "db.png"))
    assert _is_png(plots.methods_metrics_heatmap(table, tmp_path / "heat.png"))
    with pytest.raises(ValueError, match="not a column"):
        plots.metric_bars(table, "mood", tmp_path / "none.png")
    with pytest.raises(ValueError, match="no row has a value"):
        plots.metric_bars(table, "purity_language", tmp_path / "none.png")


def test_beta_sweep_uses_only_beta_rows(table, tmp_path: Path) -> None:
    assert plots.beta_of_features("beta=4") == 4.0
    assert plots.beta_of_features("beta=0.5, audio_only") == 0.5
    assert plots.beta_of_features("beta=1e-2") == 0.01
    assert plots.beta_of_features("audio_only") is None
    assert plots.beta_of_features("target_beta=4x") is None
    assert _is_png(plots.beta_sweep_plot(table, tmp_path / "beta.png"))
    no_sweep = table.filter(~pl.col("features").str.starts_with("beta="))
    with pytest.raises(ValueError, match="beta=<value>"):
        plots.beta_sweep_plot(no_sweep, tmp_path / "none.png")


def test_interactive_scatter_is_a_self_contained_html_file(points, tmp_path: Path) -> None:
    x, y = points
    hover = pl.DataFrame(
        {
            "track_id": [f"track-{i}" for i in range(len(y))],
            "genre": [["rock", "jazz", None][label] for label in y],
            "language": ["en"] * len(y),
            "cluster": y.tolist(),
        }
    )
    path = plots.interactive_scatter(x[:, :2], hover, "genre", tmp_path / "scatter.html")
    html = path.read_text(encoding="utf-8")
    assert "track-7" in html
    assert '<script src="https://cdn' not in html  # plotly.js is embedded: works offline
    size_mib = path.stat().st_size / 2**20
    assert 1.0 < size_mib < 10.0
    with pytest.raises(ValueError, match="colour column"):
        plots.interactive_scatter(x[:, :2], hover, "mood", tmp_path / "bad.html")
