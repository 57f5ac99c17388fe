"""Task runners: the Dask runner gives the same ingest results as the default thread pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.ingest import IngestConfig, ingest_flow
from tasks.audio.features import FeatureConfig, TrackFeatures
from tasks.core.runners import task_runner

SR = 22050
SMALL_FEATURES = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32, device="cpu")


def _write_songs(root: Path) -> Path:
    """Four short tones in two genres, and one empty file that must be quarantined."""
    rng = np.random.default_rng(7)
    for i, (genre, freq) in enumerate([("rock", 220), ("rock", 330), ("jazz", 440), ("jazz", 550)]):
        t = np.arange(int(2.5 * SR)) / SR
        samples = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
        path = root / "genres_original" / genre / f"{genre}.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples.astype(np.float32), SR)
    (root / "genres_original" / "jazz" / "empty.wav").write_bytes(b"")
    return root


def _features_by_file(store: Path) -> dict[str, TrackFeatures]:
    return {path.name: TrackFeatures.load(path) for path in sorted(store.glob("*.npz"))}


def test_threads_is_the_default_and_sized_by_workers() -> None:
    runner = task_runner("threads", workers=3)
    assert isinstance(runner, ThreadPoolTaskRunner)
    assert runner._max_workers == 3
    assert isinstance(task_runner(), ThreadPoolTaskRunner)


def test_dask_runner_builds_a_loopback_process_cluster_or_connects_to_an_address() -> None:
    local = task_runner("dask", workers=2, address=None)
    assert isinstance(local, DaskTaskRunner)
    assert local.address is None
    assert local.cluster_kwargs["n_workers"] == 2
    assert local.cluster_kwargs["processes"] is True
    assert local.cluster_kwargs["host"] == "127.0.0.1"

    assert local.cluster_kwargs["security"] is True

    remote = task_runner("dask", workers=0, address="tcp://127.0.0.1:8786")
    assert remote.address == "tcp://127.0.0.1:8786"
    assert remote.cluster_kwargs == {}


def test_a_local_cluster_talks_only_to_holders_of_its_credentials() -> None:
    """The scheduler of the cluster the dask runner starts speaks mutual TLS with credentials
    made for it: a client holding them works, a TLS client without a certificate is turned away
    in the handshake."""
    import asyncio
    import ssl

    from distributed import Client
    from distributed.comm import CommClosedError, connect

    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stranger.check_hostname = False
    stranger.verify_mode = ssl.CERT_NONE

    async def ask_as_a_stranger(address: str) -> object:
        comm = await connect(address, timeout=5, ssl_context=stranger)
        await comm.write({"op": "identity"})
        return await comm.read()

    with task_runner("dask", workers=1) as runner:
        client = runner.client
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        with Client(address, security=client.security, timeout=30) as holder:
            assert holder.submit(sum, [1, 2]).result(timeout=60) == 3
        # The server ends the handshake; the client sees the alert or just the closed socket.
        with pytest.raises(CommClosedError, match=r"certificate required|EOF occurred"):
            asyncio.run(ask_as_a_stranger(address))


@pytest.mark.parametrize(
    ("name", "workers", "address", "message"),
    [
        ("spark", 1, None, "unknown task runner"),
        ("threads", -1, None, "workers must be >= 0"),
        ("threads", 1, "tcp://127.0.0.1:8786", "needs the 'dask' task runner"),
    ],
)
def test_bad_choices_are_refused_with_the_reason(
    name: str, workers: int, address: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        task_runner(name, workers=workers, address=address)  # type: ignore[arg-type]


def test_dask_runner_gives_the_same_features_as_the_thread_pool(
    prefect_api, tmp_path: Path
) -> None:
    songs = _write_songs(tmp_path / "songs")

    # Separate work directories: each runner computes everything itself (no shared cache).
    threads = ingest_flow.with_options(task_runner=task_runner("threads", workers=2))(
        IngestConfig(data=songs, workdir=tmp_path / "threads", features=SMALL_FEATURES)
    )
    dask = ingest_flow.with_options(task_runner=task_runner("dask", workers=2, address=None))(
        IngestConfig(data=songs, workdir=tmp_path / "dask", features=SMALL_FEATURES)
    )

    assert (dask.n_ok, dask.n_quarantined) == (threads.n_ok, threads.n_quarantined) == (4, 1)
    assert (dask.featurized, dask.validated) == (4, 5)
    assert dask.fingerprint == threads.fingerprint

    columns = ["track_id", "sha256", "status", "genre", "duration_s"]
    assert (
        pl.read_parquet(dask.workspace.tracks_table)
        .select(columns)
        .sort("track_id")
        .equals(pl.read_parquet(threads.workspace.tracks_table).select(columns).sort("track_id"))
    )

    expected = _features_by_file(threads.workspace.feature_store(threads.feature_key))
    actual = _features_by_file(dask.workspace.feature_store(dask.feature_key))
    assert len(expected) == 4
    assert actual.keys() == expected.keys()
    for name, features in expected.items():
        for field in ("logmel", "mfcc", "crop_stats", "track_stats"):
            np.testing.assert_array_equal(
                getattr(actual[name], field), getattr(features, field), err_msg=f"{name} {field}"
            )
