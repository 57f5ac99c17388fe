"""The comparison of every representation x clustering algorithm, ranked and written out.

One row per (``method``, ``features``, ``algorithm``), each metric as its mean over seeds and
``<metric>_std``. ``method`` names the model or baseline, ``features`` the variant of its
representation (``beta=4``, ``fusion=late``, ``audio_only``, ``audio+lyrics``, ``mixture`` for
VaDE's own assignment, ...). Rows that used labels to build their representation
(``uses_labels``) are ranked apart from the unsupervised ones, because comparing them would
reward the use of the answer key.

In the table a missing or undefined metric is null (never NaN), so sorting and ranking treat it
as "no value" rather than as a very large number.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from models.zoo import MODEL_NAMES
from registry.tracking import DEFAULT_TRACKING_URI
from tasks.core.errors import UserInputError
from tasks.evaluation.metrics import (
    EXTERNAL_METRICS,
    INTERNAL_METRICS,
    LANGUAGE_METRICS,
    RANKED_METRICS,
    higher_is_better,
    is_number,
)

MODEL_METHODS = MODEL_NAMES
BASELINE_METHODS = ("pca", "spectral_features", "handcrafted")
METHODS = MODEL_METHODS + BASELINE_METHODS


class RankingError(UserInputError):
    """The comparison cannot be ranked by the metric asked for; the message lists those it can."""


IDENTITY_COLUMNS = ("method", "features", "algorithm", "uses_labels")
COUNT_COLUMNS = ("n_seeds", "n_clusters", "n_clusters_std", "noise_fraction", "noise_fraction_std")
DISPLAY_NAMES = {
    "silhouette": "Silhouette",
    "calinski_harabasz": "Calinski-Harabasz",
    "davies_bouldin": "Davies-Bouldin",
    "ari": "ARI",
    "nmi": "NMI",
    "purity": "Purity",
    "accuracy": "Accuracy",
    "ari_language": "ARI (language)",
    "nmi_language": "NMI (language)",
    "purity_language": "Purity (language)",
    "accuracy_language": "Accuracy (language)",
}


def _metric_columns(with_language: bool) -> list[str]:
    names = list(INTERNAL_METRICS) + list(EXTERNAL_METRICS)
    if with_language:
        names += list(LANGUAGE_METRICS)
    return [column for name in names for column in (name, f"{name}_std")]


def _float_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def build_comparison_table(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """The comparison table from one aggregated row per representation x algorithm.

    Args:
        rows: dicts as returned by :func:`tasks.evaluation.metrics.aggregate_over_seeds`, each with
        at
            least ``method``, ``features``, ``algorithm`` and ``uses_labels``, and any of the
            metrics; language-target metrics carry the ``_language`` suffix.

    Returns:
        polars DataFrame with columns ``method, features, algorithm, uses_labels, n_seeds,
        n_clusters(_std), noise_fraction(_std)``, every internal and external metric and its
        ``_std``, and the ``*_language`` metrics when any row has one. Other numeric keys are
        kept as extra Float64 columns, other keys as String columns. NaN becomes null.

    Raises:
        ValueError: no rows, a missing identity key, or an unknown ``method``.
    """
    if not rows:
        raise ValueError("the comparison table needs at least one row")
    for position, row in enumerate(rows):
        missing = [key for key in IDENTITY_COLUMNS if key not in row]
        if missing:
            raise ValueError(f"row {position} lacks {missing}; every row needs {IDENTITY_COLUMNS}")
        if row["method"] not in METHODS:
            raise ValueError(
                f"row {position} has unknown method {row['method']!r}; known: {METHODS}"
            )
    with_language = any(
        _float_or_none(row.get(name)) is not None for row in rows for name in LANGUAGE_METRICS
    )
    numeric = list(COUNT_COLUMNS) + _metric_columns(with_language)
    known = set(IDENTITY_COLUMNS) | set(numeric) | set(LANGUAGE_METRICS)
    known |= {f"{name}_std" for name in LANGUAGE_METRICS}
    extras: list[str] = []
    for row in rows:
        extras.extend(key for key in row if key not in known and key not in extras)
    extra_numeric = [
        key
        for key in extras
        if all(row.get(key) is None or is_number(row[key]) for row in rows)
        and any(is_number(row.get(key)) for row in rows)
    ]
    extra_text = [key for key in extras if key not in extra_numeric]

    columns: dict[str, pl.Series] = {
        "method": pl.Series([str(row["method"]) for row in rows], dtype=pl.String),
        "features": pl.Series([str(row["features"]) for row in rows], dtype=pl.String),
        "algorithm": pl.Series([str(row["algorithm"]) for row in rows], dtype=pl.String),
        "uses_labels": pl.Series([bool(row["uses_labels"]) for row in rows], dtype=pl.Boolean),
    }
    for name in [*numeric, *extra_numeric]:
        dtype = pl.Int64 if name == "n_seeds" else pl.Float64
        values = [_float_or_none(row.get(name)) for row in rows]
        if dtype == pl.Int64:
            values = [None if value is None else round(value) for value in values]
        columns[name] = pl.Series(values, dtype=dtype)
    for name in extra_text:
        columns[name] = pl.Series(
            [None if row.get(name) is None else str(row[name]) for row in rows], dtype=pl.String
        )
    return pl.DataFrame(columns)


def default_ranking_metric(table: pl.DataFrame) -> str:
    """``"nmi"`` when any row has an NMI against known labels, else ``"silhouette"``."""
    if "nmi" in table.columns and table["nmi"].fill_nan(None).drop_nulls().len() > 0:
        return "nmi"
    return "silhouette"


def rank(table: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Rank the rows by one metric, unsupervised rows and label-using rows separately.

    Args:
        table: from :func:`build_comparison_table`.
        by: metric column; default :func:`default_ranking_metric`. The direction comes from
            :func:`tasks.evaluation.metrics.higher_is_better` (Davies-Bouldin: lower is better).

    Returns:
        ``table`` sorted best first with new columns ``rank`` (1 = best among rows with
        ``uses_labels == False``; null for label-using rows and rows without the metric),
        ``rank_uses_labels`` (the same among label-using rows only; null for the others) and
        ``ranked_by``. Ties share the better rank.

    Raises:
        RankingError: ``by`` is not a rankable metric column of ``table`` (for example a metric
            against labels when the collection has none).
    """
    by = by or default_ranking_metric(table)
    rankable = [c for c in table.columns if c in RANKED_METRICS]
    if by not in rankable:
        raise RankingError(f"cannot rank by {by!r}; rankable columns here: {rankable}")
    descending = higher_is_better(by)
    value = pl.col(by).fill_nan(None)
    group_rank = value.rank("min", descending=descending).over("uses_labels").cast(pl.Int64)
    ranked = table.drop(["rank", "rank_uses_labels", "ranked_by"], strict=False).with_columns(
        pl.when(~pl.col("uses_labels")).then(group_rank).otherwise(None).alias("rank"),
        pl.when(pl.col("uses_labels")).then(group_rank).otherwise(None).alias("rank_uses_labels"),
        pl.lit(by).alias("ranked_by"),
    )
    return ranked.sort(
        ["uses_labels", "rank", "rank_uses_labels", "method", "features", "algorithm"],
        nulls_last=True,
    )


# ----------------------------------------------------------------------------- formatting


def format_mean_std(mean: float | None, std: float | None, decimals: int = 3) -> str:
    """``"0.512 ± 0.010"``; the mean alone when std is missing; ``"n/a"`` when mean is missing."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _format_count(mean: float | None, std: float | None) -> str:
    """Cluster counts: an integer when every seed agreed, else mean ± std with 1 decimal."""
    if mean is None:
        return "n/a"
    if (std is None or std == 0 or math.isnan(std)) and float(mean).is_integer():
        return str(int(mean))
    return format_mean_std(mean, std, decimals=1)


def _displayed_metrics(table: pl.DataFrame) -> list[str]:
    """Metrics with at least one value in the table, in canonical order."""
    names = [*INTERNAL_METRICS, *EXTERNAL_METRICS, *LANGUAGE_METRICS]
    return [
        name
        for name in names
        if name in table.columns and table[name].fill_nan(None).drop_nulls().len() > 0
    ]


def _display_rows(table: pl.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, formatted cells and the uses_labels flag of every row (rank order)."""
    metrics = _displayed_metrics(table)
    header = ["Rank", "Method", "Features", "Algorithm", "k", "Noise", "Seeds"]
    header += [DISPLAY_NAMES.get(name, name) for name in metrics]
    cells: list[list[str]] = []
    flags: list[bool] = []
    for row in table.iter_rows(named=True):
        position = row["rank_uses_labels"] if row["uses_labels"] else row["rank"]
        line = [
            "–" if position is None else str(position),
            row["method"],
            row["features"],
            row["algorithm"],
            _format_count(row.get("n_clusters"), row.get("n_clusters_std")),
            format_mean_std(row.get("noise_fraction"), row.get("noise_fraction_std")),
            "n/a" if row.get("n_seeds") is None else str(row["n_seeds"]),
        ]
        line += [format_mean_std(row.get(name), row.get(f"{name}_std")) for name in metrics]
        cells.append(line)
        flags.append(bool(row["uses_labels"]))
    return header, cells, flags


def _markdown_table(header: list[str], cells: list[list[str]]) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| " + " | ".join(escape(h) for h in header) + " |",
        "| " + " | ".join("---" if i < 4 else "---:" for i in range(len(header))) + " |",
    ]
    lines += ["| " + " | ".join(escape(c) for c in line) + " |" for line in cells]
    return "\n".join(lines)


def to_markdown(table: pl.DataFrame) -> str:
    """Readable markdown: unsupervised rows and label-using rows in two ranked tables."""
    header, cells, flags = _display_rows(table)
    by = table["ranked_by"][0]
    direction = "higher" if higher_is_better(by) else "lower"
    parts = [
        "# Clustering comparison",
        "",
        f"Ranked by **{by}** ({direction} is better). Values are mean ± standard deviation "
        "over seeds; k is the number of clusters found (DBSCAN noise excluded); n/a = not "
        "defined or no labels.",
        "",
        "## Unsupervised representations",
        "",
        _markdown_table(header, [c for c, f in zip(cells, flags, strict=True) if not f]),
    ]
    if any(flags):
        parts += [
            "",
            "## Representations that use labels (ranked separately)",
            "",
            _markdown_table(header, [c for c, f in zip(cells, flags, strict=True) if f]),
        ]
    return "\n".join(parts) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(char) for char in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped; ± becomes ``$\\pm$``."""
    escaped = _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIAL[match.group(0)], text)
    return escaped.replace("±", r"$\pm$").replace("–", "--")


def to_latex(table: pl.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), label-using rows in a block."""
    header, cells, flags = _display_rows(table)
    alignment = "llll" + "r" * (len(header) - 4)
    width = len(header)
    lines = [
        f"% Ranked by {latex_escape(table['ranked_by'][0])}; mean $\\pm$ std over seeds.",
        f"\\begin{{tabular}}{{{alignment}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(latex_escape(c) for c in line) + r" \\"
        for line, flag in zip(cells, flags, strict=True)
        if not flag
    ]
    if any(flags):
        lines += [r"\midrule", f"\\multicolumn{{{width}}}{{l}}{{\\emph{{Using labels}}}} \\\\"]
        lines += [
            " & ".join(latex_escape(c) for c in line) + r" \\"
            for line, flag in zip(cells, flags, strict=True)
            if flag
        ]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_reports(table: pl.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``comparison.csv``, ``comparison.md`` and ``comparison.tex`` into ``out_dir``.

    The table is ranked with the default metric first unless it already has a ``rank`` column.
    The CSV holds every column (nulls as empty cells); the markdown and LaTeX files show the
    metrics that have at least one value, as mean ± std with 3 decimals.

    Returns:
        ``{"csv": path, "markdown": path, "latex": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "rank" not in table.columns:
        table = rank(table)
    paths = {
        "csv": out_dir / "comparison.csv",
        "markdown": out_dir / "comparison.md",
        "latex": out_dir / "comparison.tex",
    }
    table.write_csv(paths["csv"])
    paths["markdown"].write_text(to_markdown(table), encoding="utf-8")
    paths["latex"].write_text(to_latex(table), encoding="utf-8")
    return paths


def mlflow_ui_command(tracking_uri: str) -> str:
    """``mlflow ui`` for the default store, else with ``--backend-store-uri`` (shell-quoted)."""
    if tracking_uri == DEFAULT_TRACKING_URI:
        return "mlflow ui"
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"


def console_summary(
    table: pl.DataFrame, report_dir: str | Path, tracking_uri: str, *, top: int = 3
) -> str:
    """A few lines for the terminal: the best rows, where the report is, how to open MLflow."""
    if "rank" not in table.columns:
        table = rank(table)
    by = table["ranked_by"][0]
    direction = "higher" if higher_is_better(by) else "lower"

    def describe(row: dict[str, Any], position: int) -> str:
        value = format_mean_std(row.get(by), row.get(f"{by}_std"))
        k = _format_count(row.get("n_clusters"), row.get("n_clusters_std"))
        return (
            f"  {position}. {row['method']} [{row['features']}] + {row['algorithm']}: "
            f"{by} {value} (k={k})"
        )

    unsupervised = table.filter(~pl.col("uses_labels") & pl.col("rank").is_not_null())
    with_labels = table.filter(pl.col("uses_labels") & pl.col("rank_uses_labels").is_not_null())
    lines = [f"Best unsupervised clusterings by {by} ({direction} is better):"]
    if unsupervised.height == 0:
        lines.append(f"  (no unsupervised row has a value for {by})")
    lines += [describe(row, row["rank"]) for row in unsupervised.head(top).iter_rows(named=True)]
    if with_labels.height:
        lines.append("Using labels (ranked separately):")
        lines += [
            describe(row, row["rank_uses_labels"])
            for row in with_labels.head(top).iter_rows(named=True)
        ]
    report_dir = Path(report_dir)
    lines.append(f"Report: {report_dir / 'comparison.md'} (also comparison.csv, comparison.tex)")
    lines.append(f"Browse runs: {mlflow_ui_command(tracking_uri)}")
    return "\n".join(lines)
