"""Comparison table: columns, separate ranking of label-using rows, and the written reports."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from tasks.evaluation.report import (
    build_comparison_table,
    console_summary,
    latex_escape,
    mlflow_ui_command,
    rank,
    write_reports,
)

# Every metric column of the table, each with its `_std` over seeds.
METRIC_COLUMNS = [
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "ari",
    "nmi",
    "purity",
    "accuracy",
]
REQUIRED_COLUMNS = [
    "method",
    "features",
    "algorithm",
    "n_clusters",
    "uses_labels",
    *METRIC_COLUMNS,
    "n_seeds",
    "noise_fraction",
]
LANGUAGE_COLUMNS = ["ari_language", "nmi_language", "purity_language", "accuracy_language"]


def _row(
    method: str,
    features: str,
    algorithm: str,
    nmi: float,
    *,
    uses_labels: bool = False,
    silhouette: float = 0.3,
    davies_bouldin: float = 1.0,
    language: bool = False,
) -> dict:
    """One aggregated row of the comparison table with plausible values."""
    row = {
        "method": method,
        "features": features,
        "algorithm": algorithm,
        "uses_labels": uses_labels,
        "n_seeds": 3,
        "n_clusters": 4.0,
        "n_clusters_std": 0.0,
        "noise_fraction": 0.0,
        "noise_fraction_std": 0.0,
        "silhouette": silhouette,
        "silhouette_std": 0.01,
        "calinski_harabasz": 120.5,
        "calinski_harabasz_std": 3.2,
        "davies_bouldin": davies_bouldin,
        "davies_bouldin_std": 0.05,
        "ari": nmi - 0.1,
        "ari_std": 0.02,
        "nmi": nmi,
        "nmi_std": 0.0123,
        "purity": nmi + 0.1,
        "purity_std": 0.01,
        "accuracy": nmi,
        "accuracy_std": 0.01,
    }
    if language:
        row |= {f"{name}": 0.2 for name in LANGUAGE_COLUMNS}
        row |= {f"{name}_std": 0.01 for name in LANGUAGE_COLUMNS}
    return row


@pytest.fixture
def rows() -> list[dict]:
    return [
        _row("conv_vae", "beta=1", "kmeans", 0.40, silhouette=0.20, davies_bouldin=1.5),
        _row("beta_vae", "beta=4", "gmm", 0.55, silhouette=0.10, davies_bouldin=0.9),
        _row("pca", "audio_only", "kmeans", 0.30, silhouette=0.35, davies_bouldin=1.2),
        _row("cvae", "audio+lyrics", "kmeans", 0.90, uses_labels=True, silhouette=0.5),
        _row("vade", "mixture", "gmm", float("nan"), silhouette=0.25),
    ]


def test_table_has_every_required_column_and_std(rows) -> None:
    table = build_comparison_table(rows)
    assert table.height == len(rows)
    for column in REQUIRED_COLUMNS:
        assert column in table.columns, column
    for metric in (*METRIC_COLUMNS, "n_clusters", "noise_fraction"):
        assert f"{metric}_std" in table.columns, metric
    assert not any(column in table.columns for column in LANGUAGE_COLUMNS)
    assert table.schema["uses_labels"] == pl.Boolean
    assert table.filter(pl.col("method") == "vade")["nmi"].to_list() == [None]


def test_language_columns_appear_when_language_labels_are_known(rows) -> None:
    rows[0] = _row("multimodal_vae", "fusion=late", "kmeans", 0.4, language=True)
    table = build_comparison_table(rows)
    for column in LANGUAGE_COLUMNS:
        assert column in table.columns
        assert f"{column}_std" in table.columns
    assert table["nmi_language"].null_count() == len(rows) - 1


def test_unknown_method_is_rejected(rows) -> None:
    rows[0]["method"] = "transformer"
    with pytest.raises(ValueError, match="unknown method 'transformer'"):
        build_comparison_table(rows)


def test_label_using_rows_are_ranked_apart(rows) -> None:
    ranked = rank(build_comparison_table(rows))
    assert ranked["ranked_by"][0] == "nmi"
    unsupervised = ranked.filter(~pl.col("uses_labels"))
    assert unsupervised["method"].to_list()[:3] == ["beta_vae", "conv_vae", "pca"]
    assert unsupervised["rank"].to_list() == [1, 2, 3, None]  # vade has no NMI
    assert unsupervised["rank_uses_labels"].null_count() == unsupervised.height
    with_labels = ranked.filter(pl.col("uses_labels"))
    assert with_labels["rank"].to_list() == [None]
    assert with_labels["rank_uses_labels"].to_list() == [1]


def test_ranking_falls_back_to_silhouette_without_labels(rows) -> None:
    for row in rows:
        for name in ("ari", "nmi", "purity", "accuracy"):
            row[name] = float("nan")
    ranked = rank(build_comparison_table(rows))
    assert ranked["ranked_by"][0] == "silhouette"
    assert ranked.filter(pl.col("rank") == 1)["method"].to_list() == ["pca"]


def test_davies_bouldin_ranks_lower_first(rows) -> None:
    ranked = rank(build_comparison_table(rows), by="davies_bouldin")
    assert ranked.filter(pl.col("rank") == 1)["method"].to_list() == ["beta_vae"]


def test_rank_rejects_columns_that_are_not_metrics(rows) -> None:
    with pytest.raises(ValueError, match="cannot rank by 'features'"):
        rank(build_comparison_table(rows), by="features")


def test_reports_are_written_and_parseable(rows, tmp_path: Path) -> None:
    rows[0] = _row("multimodal_vae", "fusion=late", "kmeans", 0.4, language=True)
    table = rank(build_comparison_table(rows))
    paths = write_reports(table, tmp_path / "reports")
    assert set(paths) == {"csv", "markdown", "latex"}
    assert all(path.stat().st_size > 0 for path in paths.values())

    from_csv = pl.read_csv(paths["csv"])
    assert from_csv.height == len(rows)
    assert set(REQUIRED_COLUMNS) <= set(from_csv.columns)
    assert from_csv.sort("method")["nmi"].to_list()[:2] == pytest.approx([0.55, 0.90])

    markdown = paths["markdown"].read_text()
    assert "0.550 ± 0.012" in markdown  # beta_vae NMI, 3 decimals
    assert "Representations that use labels" in markdown
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    widths = {line.count(" | ") for line in table_lines}
    assert len(widths) == 1, "every markdown row has the same number of cells"
    assert len(table_lines) == len(rows) + 4  # two headers and two separators

    latex = paths["latex"].read_text()
    assert latex.count(r"\toprule") == 1
    assert latex.count(r"\bottomrule") == 1
    assert r"beta\_vae" in latex
    assert r"0.550 $\pm$ 0.012" in latex
    body = [
        line for line in latex.splitlines() if line.endswith(r"\\") and "multicolumn" not in line
    ]
    columns = {line.count(" & ") for line in body}
    assert len(columns) == 1, "every LaTeX row has the same number of cells"
    for line in body:
        assert "_" not in line.replace(r"\_", "")


def test_write_reports_ranks_an_unranked_table(rows, tmp_path: Path) -> None:
    paths = write_reports(build_comparison_table(rows), tmp_path)
    assert "rank" in pl.read_csv(paths["csv"]).columns


def test_latex_escape_covers_special_characters() -> None:
    assert latex_escape("a_b & 50% #1 $x$ {y} ~ ^") == (
        r"a\_b \& 50\% \#1 \$x\$ \{y\} \textasciitilde{} \textasciicircum{}"
    )
    assert latex_escape("0.5 ± 0.1") == r"0.5 $\pm$ 0.1"


def test_console_summary_names_the_best_rows_the_report_and_the_ui(rows, tmp_path: Path) -> None:
    table = rank(build_comparison_table(rows))
    summary = console_summary(table, tmp_path, "sqlite:///mlflow.db")
    lines = summary.splitlines()
    assert "1. beta_vae [beta=4] + gmm: nmi 0.550 ± 0.012" in summary
    assert "1. cvae [audio+lyrics] + kmeans" in summary
    assert str(tmp_path / "comparison.md") in summary
    assert lines[-1] == "Browse runs: mlflow ui"
    other = console_summary(table, tmp_path, "sqlite:////data/runs/mlflow.db")
    assert other.splitlines()[-1].endswith(
        "mlflow ui --backend-store-uri sqlite:////data/runs/mlflow.db"
    )


def test_mlflow_ui_command_quotes_uris_with_spaces() -> None:
    assert mlflow_ui_command("sqlite:////my runs/mlflow.db") == (
        "mlflow ui --backend-store-uri 'sqlite:////my runs/mlflow.db'"
    )


def test_nan_metrics_become_null(rows) -> None:
    table = build_comparison_table(rows)
    values = table["nmi"].to_list()
    assert None in values
    assert not any(isinstance(value, float) and math.isnan(value) for value in values)


# ----------------------------------------------------------------------------- issue 14


def _same_latents_rows() -> list[dict]:
    """A beta-VAE at beta=1 and the MLP-VAE: the same latents, so the same scores."""
    twin = _row("beta_vae", "beta=1", "kmeans", 0.60)
    return [
        twin,
        {**twin, "method": "mlp_vae", "features": "audio_only"},
        _row("pca", "audio_only", "kmeans", 0.50),
        _row("conv_vae", "log-mel crops", "kmeans", 0.40),
    ]


def test_std_is_shown_only_where_more_than_one_seed_ran(rows, tmp_path: Path) -> None:
    rows[2] |= {"n_seeds": 1, "nmi_std": 0.0, "silhouette_std": 0.0}
    markdown = write_reports(build_comparison_table(rows), tmp_path)["markdown"].read_text()
    pca_line = next(line for line in markdown.splitlines() if "| pca |" in line)
    assert "±" not in pca_line
    assert "| 0.300 |" in pca_line  # its NMI, alone
    beta_line = next(line for line in markdown.splitlines() if "| beta_vae |" in line)
    assert "0.550 ± 0.012" in beta_line
    assert "| 0 |" in beta_line  # no noise in any seed: a plain 0, not 0.000 ± 0.000
    assert "where more than one seed ran" in markdown

    for row in rows:
        row["n_seeds"] = 1
    single = write_reports(build_comparison_table(rows), tmp_path / "single")
    text = single["markdown"].read_text()
    assert "±" not in text
    assert "single run" in text
    assert r"$\pm$" not in single["latex"].read_text().split("\n", 1)[1]


def test_identical_rows_share_one_rank_and_are_shown_once(tmp_path: Path) -> None:
    table = rank(build_comparison_table(_same_latents_rows()))

    twins = table.filter(pl.col("identical_to").is_not_null())
    assert sorted(twins["method"].to_list()) == ["beta_vae", "mlp_vae"]
    assert twins["rank"].to_list() == [1, 1]
    assert table.filter(pl.col("method") == "beta_vae")["identical_to"].to_list() == [
        "mlp_vae [audio_only]"
    ]
    # the twins take one place: the next row is 2nd, not 3rd
    assert table.filter(pl.col("method") == "pca")["rank"].to_list() == [2]

    paths = write_reports(table, tmp_path)
    assert pl.read_csv(paths["csv"]).height == 4  # the CSV keeps one row per method
    markdown = paths["markdown"].read_text()
    assert "| 1 | beta_vae / mlp_vae | beta=1 / audio_only | kmeans |" in markdown
    assert markdown.count("mlp_vae") == 1
    assert "| 2 | pca |" in markdown
    assert "scored identically on every metric" in markdown
    latex = paths["latex"].read_text()
    assert r"1 & beta\_vae / mlp\_vae & beta=1 / audio\_only & kmeans" in latex
    assert latex.count("mlp") == 1
    summary = console_summary(table, tmp_path, "sqlite:///mlflow.db")
    assert "1. beta_vae [beta=1] / mlp_vae [audio_only] + kmeans: nmi 0.600" in summary
    assert "2. pca [audio_only] + kmeans" in summary


def test_rows_that_differ_in_any_score_are_not_merged() -> None:
    rows = _same_latents_rows()
    rows[1]["silhouette"] += 1e-4
    table = rank(build_comparison_table(rows))
    assert table["identical_to"].null_count() == table.height
    assert table.filter(pl.col("method") == "pca")["rank"].to_list() == [3]
    other_algorithm = _same_latents_rows()
    other_algorithm[1]["algorithm"] = "gmm"
    assert build_comparison_table(other_algorithm)["identical_to"].null_count() == 4


def _one_cluster(method: str, features: str) -> dict:
    """DBSCAN that put every dense point in one cluster: external scores near zero, internal
    ones undefined."""
    row = _row(method, features, "dbscan", 0.017) | {"n_seeds": 1, "n_clusters": 1.0}
    return row | {name: None for name in ("silhouette", "calinski_harabasz", "davies_bouldin")}


def test_one_cluster_is_reported_as_no_structure_and_never_ranked(rows, tmp_path: Path) -> None:
    rows += [_one_cluster("ae", "default"), _one_cluster("beta_vae", "beta=0.5")]
    rows[0]["nmi"] = 0.0  # a real clustering that scored worse than the one-cluster rows
    table = rank(build_comparison_table(rows))

    lonely = table.filter(pl.col("algorithm") == "dbscan")
    assert lonely["found_structure"].to_list() == [False, False]
    assert lonely["rank"].to_list() == [None, None]
    assert lonely["identical_to"].to_list() == [None, None]  # equal by accident, not twins
    assert table.filter(pl.col("method") == "conv_vae")["rank"].to_list() == [3]
    assert table.filter(pl.col("method") == "pca")["found_structure"].to_list() == [True]

    paths = write_reports(table, tmp_path)
    markdown = paths["markdown"].read_text()
    assert "| dbscan |" not in markdown
    assert (
        "**No structure found** (fewer than 2 clusters besides noise, so not ranked): "
        "ae [default] + dbscan; beta_vae [beta=0.5] + dbscan." in markdown
    )
    latex = paths["latex"].read_text()
    assert r"-- & ae & default & dbscan & 1 & \multicolumn" in latex
    assert latex.count("no structure found") == 2
    summary = console_summary(table, tmp_path, "sqlite:///mlflow.db")
    assert "dbscan" not in summary
    assert "2 clustering(s) found no structure" in summary
