"""The comparison of every representation x clustering algorithm, ranked and written out.

One row per (``method``, ``features``, ``algorithm``), each metric as its mean over seeds and
``<metric>_std``. ``method`` names the model or baseline, ``features`` the variant of its
representation (``beta=4``, ``fusion=late``, ``audio_only``, ``audio+lyrics``, ``mixture`` for
VaDE's own assignment, ...). Rows that used labels to build their representation
(``uses_labels``) are ranked apart from the unsupervised ones, because comparing them would
reward the use of the answer key.

In the table a missing or undefined metric is null (never NaN), so sorting and ranking treat it
as "no value" rather than as a very large number.

Two rules keep the ranking honest:

- A clustering that found fewer than two clusters (DBSCAN putting every dense point in one
  cluster) has found no structure: ``found_structure`` is False, it gets no rank (so it can never
  be the champion), and the readable views list it as "no structure found" instead of ranking
  its near-zero scores.
- Rows with identical scores on every metric are the same latents under two names (a beta-VAE at
  beta=1 is the MLP-VAE). The CSV keeps one row per method, so every method can still be looked
  up by name, and names the others in ``identical_to``; the rows share one rank and take one
  place in the ranking. The Markdown, LaTeX and console views show them once, as
  ``beta_vae / mlp_vae`` with features ``beta=1 / audio_only``.

A ``± std`` is shown only where more than one seed ran (``n_seeds > 1``); a single run says
nothing about the spread.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from models.zoo import MODEL_NAMES
from registry.tracking import DEFAULT_TRACKING_URI
from tasks.core.errors import UserInputError
from tasks.core.redaction import redact_credentials
from tasks.evaluation.metrics import (
    EXTERNAL_METRICS,
    INTERNAL_METRICS,
    LANGUAGE_METRICS,
    RANKED_METRICS,
    higher_is_better,
    is_number,
)

MODEL_METHODS = MODEL_NAMES
BASELINE_METHODS = ("pca", "spectral_features", "handcrafted", "musicnn", "lyrics")
METHODS = MODEL_METHODS + BASELINE_METHODS


class RankingError(UserInputError):
    """The comparison cannot be ranked by the metric asked for; the message lists those it can."""


IDENTITY_COLUMNS = ("method", "features", "algorithm", "uses_labels")
# Columns the table derives from the others (never taken from the input rows).
DERIVED_COLUMNS = ("found_structure", "identical_to")
# A clustering needs at least this many clusters (noise excluded) to say anything about the data.
MIN_CLUSTERS_FOR_STRUCTURE = 2
# Scores agreeing to this many decimals on every metric count as identical: far below
# any difference two different latent spaces produce, far above float round-off.
IDENTICAL_DECIMALS = 9
# How the readable views join the names of identical rows.
NAME_JOINER = " / "
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
        kept as extra Float64 columns, other keys as String columns. NaN becomes null. Last come
        ``found_structure`` (Boolean: at least two clusters; null when no seed clustered) and
        ``identical_to`` (String: ``"method [features]"`` of the rows with identical scores,
        ``"; "``-joined; null for most rows); see the module docstring.

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
    known = set(IDENTITY_COLUMNS) | set(numeric) | set(LANGUAGE_METRICS) | set(DERIVED_COLUMNS)
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
    return _with_derived_columns(pl.DataFrame(columns))


def _found_structure() -> pl.Expr:
    """At least two clusters (mean over seeds); null where no seed produced a clustering."""
    return pl.col("n_clusters") >= MIN_CLUSTERS_FOR_STRUCTURE


def _score_columns(table: pl.DataFrame) -> list[str]:
    """Every number that describes a row's clustering, in the order of the table."""
    candidates = {"n_seeds", *COUNT_COLUMNS, *_metric_columns(with_language=True)}
    return [column for column in table.columns if column in candidates]


def identical_groups(table: pl.DataFrame) -> list[int]:
    """For each row, the index of the first row with the same algorithm, the same
    ``uses_labels`` and the same value in every score column (to ``IDENTICAL_DECIMALS``), or its
    own index when no earlier row matches.

    Only rows that found structure and have a silhouette take part: two clusterings that both
    collapsed to one cluster agree by accident, not because their latents are the same.
    """
    columns = _score_columns(table)
    first_of: dict[tuple[Any, ...], int] = {}
    groups: list[int] = []
    for index, row in enumerate(table.iter_rows(named=True)):
        structured = (row.get("n_clusters") or 0) >= MIN_CLUSTERS_FOR_STRUCTURE
        if not structured or _float_or_none(row.get("silhouette")) is None:
            groups.append(index)
            continue
        values = (_float_or_none(row[column]) for column in columns)
        key = (
            row["algorithm"],
            row["uses_labels"],
            *(None if value is None else round(value, IDENTICAL_DECIMALS) for value in values),
        )
        groups.append(first_of.setdefault(key, index))
    return groups


def _row_label(row: dict[str, Any]) -> str:
    return f"{row['method']} [{row['features']}]"


def _with_derived_columns(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with ``found_structure`` and ``identical_to`` (re)computed from its scores."""
    groups = identical_groups(table)
    labels = [_row_label(row) for row in table.iter_rows(named=True)]
    identical_to = [
        "; ".join(
            labels[other]
            for other in range(len(groups))
            if other != index and groups[other] == groups[index]
        )
        or None
        for index in range(len(groups))
    ]
    return table.drop(DERIVED_COLUMNS, strict=False).with_columns(
        _found_structure().alias("found_structure"),
        pl.Series("identical_to", identical_to, dtype=pl.String),
    )


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
        ``uses_labels == False``; null for label-using rows, rows without the metric and rows
        that found no structure), ``rank_uses_labels`` (the same among label-using rows only;
        null for the others) and ``ranked_by``. Ties share the better rank; identical rows
        (``identical_to``) share one rank and take one place, so the next row follows directly.

    Raises:
        RankingError: ``by`` is not a rankable metric column of ``table`` (for example a metric
            against labels when the collection has none).
    """
    by = by or default_ranking_metric(table)
    rankable = [c for c in table.columns if c in RANKED_METRICS]
    if by not in rankable:
        raise RankingError(f"cannot rank by {by!r}; rankable columns here: {rankable}")
    table = _with_derived_columns(
        table.drop(["rank", "rank_uses_labels", "ranked_by"], strict=False)
    )
    groups = identical_groups(table)
    # Only the first row of each identical group is ranked; the others copy its rank, so a
    # method shown twice under two names does not push every row after it one place down.
    first_of_group = [group == index for index, group in enumerate(groups)]
    rankable = pl.col("_first_of_group") & pl.col("found_structure").fill_null(False)
    first_rank = (
        pl.when(rankable)
        .then(pl.col(by).fill_nan(None))
        .rank("min", descending=higher_is_better(by))
        .over("uses_labels")
    )
    ranked = (
        table.with_columns(
            pl.Series("_group", groups, dtype=pl.Int64),
            pl.Series("_first_of_group", first_of_group, dtype=pl.Boolean),
        )
        .with_columns(first_rank.alias("_first_rank"))
        .with_columns(pl.col("_first_rank").max().over("_group").cast(pl.Int64).alias("_rank"))
        .with_columns(
            pl.when(~pl.col("uses_labels")).then(pl.col("_rank")).alias("rank"),
            pl.when(pl.col("uses_labels")).then(pl.col("_rank")).alias("rank_uses_labels"),
            pl.lit(by).alias("ranked_by"),
        )
        .drop("_group", "_first_of_group", "_first_rank", "_rank")
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


def _format_noise(mean: float | None, std: float | None) -> str:
    """Share of noise points: ``"0"`` where no run had any (every algorithm but DBSCAN)."""
    if mean == 0 and not std:
        return "0"
    return format_mean_std(mean, std)


def _displayed_metrics(table: pl.DataFrame) -> list[str]:
    """Metrics with at least one value in the table, in canonical order."""
    names = [*INTERNAL_METRICS, *EXTERNAL_METRICS, *LANGUAGE_METRICS]
    return [
        name
        for name in names
        if name in table.columns and table[name].fill_nan(None).drop_nulls().len() > 0
    ]


@dataclass(frozen=True)
class _ShownRow:
    """One line of the readable views: a row of the table, or several identical ones merged."""

    cells: list[str]
    label: str  # "beta_vae [beta=1] / mlp_vae [audio_only] + kmeans"
    position: int | None  # rank within its block (unsupervised or using labels)
    uses_labels: bool
    found_structure: bool  # False: fewer than two clusters; listed apart, never ranked


def _joined(names: list[str]) -> str:
    """One name when all agree, else every name in order (positions pair with other columns)."""
    return names[0] if len(set(names)) == 1 else NAME_JOINER.join(names)


def _shown_row(members: list[dict[str, Any]], metrics: list[str]) -> _ShownRow:
    row = members[0]
    spread_known = (row.get("n_seeds") or 0) > 1  # one run says nothing about the spread

    def spread(name: str) -> float | None:
        return row.get(f"{name}_std") if spread_known else None

    position = row.get("rank_uses_labels") if row["uses_labels"] else row.get("rank")
    cells = [
        "–" if position is None else str(position),
        _joined([member["method"] for member in members]),
        _joined([member["features"] for member in members]),
        row["algorithm"],
        _format_count(row.get("n_clusters"), spread("n_clusters")),
        _format_noise(row.get("noise_fraction"), spread("noise_fraction")),
        "n/a" if row.get("n_seeds") is None else str(row["n_seeds"]),
    ]
    cells += [format_mean_std(row.get(name), spread(name)) for name in metrics]
    return _ShownRow(
        cells=cells,
        label=NAME_JOINER.join(_row_label(member) for member in members) + f" + {row['algorithm']}",
        position=position,
        uses_labels=bool(row["uses_labels"]),
        found_structure=row.get("found_structure") is not False,
    )


def _shown_rows(table: pl.DataFrame) -> tuple[list[str], list[_ShownRow]]:
    """Header and the lines of the readable views in table order, identical rows merged into
    the first of them."""
    metrics = _displayed_metrics(table)
    header = ["Rank", "Method", "Features", "Algorithm", "k", "Noise", "Seeds"]
    header += [DISPLAY_NAMES.get(name, name) for name in metrics]
    rows = list(table.iter_rows(named=True))
    groups = identical_groups(table)
    members: dict[int, list[dict[str, Any]]] = {}
    for row, group in zip(rows, groups, strict=True):
        members.setdefault(group, []).append(row)
    shown = [
        _shown_row(members[index], metrics) for index, group in enumerate(groups) if group == index
    ]
    return header, shown


def _markdown_table(header: list[str], cells: list[list[str]]) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| " + " | ".join(escape(h) for h in header) + " |",
        "| " + " | ".join("---" if i < 4 else "---:" for i in range(len(header))) + " |",
    ]
    lines += ["| " + " | ".join(escape(c) for c in line) + " |" for line in cells]
    return "\n".join(lines)


def _reading_notes(table: pl.DataFrame, shown: list[_ShownRow]) -> str:
    """How to read the values: the spread, merged rows, cluster counts."""
    if table["n_seeds"].fill_null(1).max() > 1:
        spread = (
            "Values are mean ± standard deviation over seeds where more than one seed ran "
            "(column Seeds), the single run's value elsewhere"
        )
    else:
        spread = "Every value comes from a single run, so no standard deviation is shown"
    notes = [
        f"{spread}; k is the number of clusters found (DBSCAN noise excluded); n/a = not "
        "defined or no labels."
    ]
    if any(NAME_JOINER in line.cells[1] for line in shown):
        notes.append(
            f"Rows whose methods are joined by '{NAME_JOINER.strip()}' scored identically on "
            "every metric (the same latents under two names, e.g. a beta-VAE at beta=1 and the "
            "MLP-VAE) and are shown once."
        )
    return " ".join(notes)


def _no_structure_note(lines: list[_ShownRow]) -> list[str]:
    if not lines:
        return []
    names = "; ".join(line.label for line in lines)
    return [
        "",
        f"**No structure found** (fewer than {MIN_CLUSTERS_FOR_STRUCTURE} clusters besides "
        f"noise, so not ranked): {names}.",
    ]


def to_markdown(table: pl.DataFrame) -> str:
    """Readable markdown: unsupervised rows and label-using rows in two ranked tables, each
    followed by the clusterings that found no structure."""
    header, shown = _shown_rows(table)
    by = table["ranked_by"][0]
    direction = "higher" if higher_is_better(by) else "lower"
    parts = [
        "# Clustering comparison",
        "",
        f"Ranked by **{by}** ({direction} is better). {_reading_notes(table, shown)}",
    ]
    for title, labelled in (
        ("Unsupervised representations", False),
        ("Representations that use labels (ranked separately)", True),
    ):
        block = [line for line in shown if line.uses_labels == labelled]
        if labelled and not block:
            continue
        ranked = [line.cells for line in block if line.found_structure]
        parts += ["", f"## {title}", "", _markdown_table(header, ranked)]
        parts += _no_structure_note([line for line in block if not line.found_structure])
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


def _latex_lines(lines: list[_ShownRow], width: int) -> list[str]:
    """Body rows; a clustering without structure keeps its name and k, then says so."""
    body = []
    for line in lines:
        if line.found_structure:
            body.append(" & ".join(latex_escape(cell) for cell in line.cells) + r" \\")
        else:
            named = " & ".join(latex_escape(cell) for cell in line.cells[:5])
            body.append(
                f"{named} & \\multicolumn{{{width - 5}}}{{l}}{{\\emph{{no structure found}}}} \\\\"
            )
    return body


def to_latex(table: pl.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), label-using rows in a block."""
    header, shown = _shown_rows(table)
    alignment = "llll" + "r" * (len(header) - 4)
    width = len(header)
    seeds = "mean $\\pm$ std where more than one seed ran"
    lines = [
        f"% Ranked by {latex_escape(table['ranked_by'][0])}; {seeds}.",
        f"\\begin{{tabular}}{{{alignment}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += _latex_lines([line for line in shown if not line.uses_labels], width)
    labelled = [line for line in shown if line.uses_labels]
    if labelled:
        lines += [r"\midrule", f"\\multicolumn{{{width}}}{{l}}{{\\emph{{Using labels}}}} \\\\"]
        lines += _latex_lines(labelled, width)
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
    """``mlflow ui`` for the default store, else with ``--backend-store-uri`` (shell-quoted; a
    password in the URI is masked: the hint is printed and logged)."""
    if tracking_uri == DEFAULT_TRACKING_URI:
        return "mlflow ui"
    return f"mlflow ui --backend-store-uri {shlex.quote(redact_credentials(tracking_uri))}"


def console_summary(
    table: pl.DataFrame, report_dir: str | Path, tracking_uri: str, *, top: int = 3
) -> str:
    """A few lines for the terminal: the best rows (identical rows once, under all their
    names), how many clusterings found no structure, where the report is, how to open MLflow."""
    if "rank" not in table.columns:
        table = rank(table)
    by = table["ranked_by"][0]
    direction = "higher" if higher_is_better(by) else "lower"
    header, shown = _shown_rows(table)

    def describe(line: _ShownRow) -> str:
        k = line.cells[header.index("k")]
        value = line.cells[header.index(DISPLAY_NAMES.get(by, by))]
        return f"  {line.position}. {line.label}: {by} {value} (k={k})"

    ranked = [line for line in shown if line.position is not None]
    unsupervised = [line for line in ranked if not line.uses_labels]
    with_labels = [line for line in ranked if line.uses_labels]
    lines = [f"Best unsupervised clusterings by {by} ({direction} is better):"]
    if not unsupervised:
        lines.append(f"  (no unsupervised row has a value for {by})")
    lines += [describe(line) for line in unsupervised[:top]]
    if with_labels:
        lines.append("Using labels (ranked separately):")
        lines += [describe(line) for line in with_labels[:top]]
    without_structure = sum(not line.found_structure for line in shown)
    if without_structure:
        lines.append(
            f"{without_structure} clustering(s) found no structure (fewer than "
            f"{MIN_CLUSTERS_FOR_STRUCTURE} clusters) and are not ranked; the report lists them."
        )
    report_dir = Path(report_dir)
    lines.append(f"Report: {report_dir / 'comparison.md'} (also comparison.csv, comparison.tex)")
    lines.append(f"Browse runs: {mlflow_ui_command(tracking_uri)}")
    return "\n".join(lines)
