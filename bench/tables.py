"""Printing result tables the same way in every benchmark (Markdown, ready for bench/README.md)."""

from __future__ import annotations

from typing import Any


def print_table(title: str, table: Any, *, float_precision: int | None = None) -> None:
    """Print a polars DataFrame under `title` as a Markdown table."""
    import polars as pl

    print(f"\n{title}")
    with pl.Config(
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_formatting="ASCII_MARKDOWN",
        tbl_rows=100,
        tbl_cols=20,
        tbl_width_chars=200,
        fmt_str_lengths=80,
        float_precision=float_precision,
    ):
        print(table)
