"""One small demo set shared by the tests of the demo stage (generated once per session)."""

from __future__ import annotations

import polars as pl
import pytest

from tasks.demo import DemoDataset, generate_demo_dataset
from tests.demo.demo_files import SHORT_S, SMALL_TRACKS


@pytest.fixture(scope="session")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("demo") / "set", tracks=SMALL_TRACKS, seed=0, duration_s=SHORT_S
    )


@pytest.fixture(scope="session")
def metadata(small_set: DemoDataset) -> pl.DataFrame:
    return pl.read_csv(small_set.metadata_csv)


@pytest.fixture(scope="session")
def truth(small_set: DemoDataset) -> pl.DataFrame:
    return pl.read_csv(small_set.lyrics_truth_csv, schema_overrides={"track_id": pl.String})
