"""The contenders of `bench/features.py`: the clips they run on, and what each side runs.

`librosa` and `core` run in-process code (`run_librosa`, `run_core`) inside a worker subprocess,
started as `bench/features.py --worker SIDE` (see `WORKERS`); the CLI sides (`CLI_SIDES`) run the
command a user types, `python -m flows ingest`, and `collect_cli_result` reads what it stored
after its timing ended. `running_serve` keeps `python -m flows serve` up for `ours_serve`.

Heavy libraries (numpy, librosa, torch, polars, the project's tasks) are imported inside the
functions: a worker's import time is part of what is measured.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SIDES = ("librosa", "core", "ours", "ours_warm", "ours_serve")
# Sides that run the command a user types, `python -m flows ingest DATA --workdir W`.
CLI_SIDES = ("ours", "ours_warm", "ours_serve")
ANALYSIS_RATE = 22050
CLIP_RATE = 44100


# ==============================================================================================
# Clips


def make_clips(root: Path, *, n_small: int, n_big: int, seed: int) -> tuple[Path, Path]:
    """Write the benchmark collections under `root`: (small folder, big folder).

    Both hold `genres_original/<genre>/<track_id>.ogg`: 44.1 kHz stereo OGG Vorbis, 30 s each.
    The small folder holds the first `n_small` tracks of the big one (the same files).
    """
    import numpy as np
    import polars as pl
    import soundfile as sf
    from scipy import signal

    from tasks.demo import generate_demo_dataset

    demo = generate_demo_dataset(root / "demo", tracks=n_big, seed=seed)
    order = pl.read_csv(demo.metadata_csv)["track_id"].to_list()
    genre_of = dict(pl.read_csv(demo.metadata_csv).select("track_id", "genre").iter_rows())
    rng = np.random.default_rng(seed)
    small, big = root / "small", root / "big"
    for index, track_id in enumerate(order):
        wav = demo.audio_dir / genre_of[track_id] / f"{track_id}.wav"
        mono, rate = sf.read(wav, dtype="float64")
        upsampled = signal.resample_poly(mono, CLIP_RATE // rate, 1)
        # A real stereo mix: the right channel a little quieter, 0.15 ms later, with its own hiss.
        delay = 7
        right = 0.92 * np.concatenate([np.zeros(delay), upsampled[:-delay]])
        right += 10 ** (-60 / 20) * rng.standard_normal(right.size)
        stereo = np.stack([upsampled, right], axis=1)
        stereo *= 0.98 / np.abs(stereo).max()
        relative = Path("genres_original", genre_of[track_id], f"{track_id}.ogg")
        (big / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(
            big / relative, stereo.astype(np.float32), CLIP_RATE, format="OGG", subtype="VORBIS"
        )
        if index < n_small:
            (small / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(big / relative, small / relative)
    shutil.rmtree(demo.root)
    return small, big


def clip_paths(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.ogg"))


def make_warmup_folder(source: Path, target: Path) -> Path:
    """A collection of one clip of `source`, for the untimed warm-up runs."""
    first = clip_paths(source)[0]
    out = target / first.relative_to(source)
    out.parent.mkdir(parents=True)
    shutil.copy(first, out)
    return target


# ==============================================================================================
# Workers: each runs in its own subprocess and writes a JSON result


def _librosa_summary(path: Path) -> dict[str, Any]:
    """The usual per-file feature extraction (one STFT per descriptor), summarised per track."""
    import librosa
    import numpy as np

    y, sr = librosa.load(path, sr=ANALYSIS_RATE)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    mfcc_delta = librosa.feature.delta(mfcc)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    contrast = librosa.feature.spectral_contrast(y=y, sr=sr)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr)
    zcr = librosa.feature.zero_crossing_rate(y)
    rms = librosa.feature.rms(y=y)
    tempo, _beats = librosa.beat.beat_track(y=y, sr=sr)

    def mean(frames: np.ndarray) -> list[float]:
        return frames.mean(axis=1).tolist()

    return {
        "mel": mean(mel),
        "mfcc": mean(mfcc),
        "mfcc_std": mfcc.std(axis=1).tolist(),
        "mfcc_delta": mean(mfcc_delta),
        "chroma": mean(chroma),
        "contrast": mean(contrast),
        "centroid": float(centroid.mean()),
        "rolloff": float(rolloff.mean()),
        "zcr": float(zcr.mean()),
        "rms": float(rms.mean()),
        "tempo": float(np.atleast_1d(tempo)[0]),
    }


def _ours_summary(track_stats: Any, names: list[str]) -> dict[str, Any]:
    """The same descriptors read from our summary vector (track_stats, shape (n_summary,))."""
    position = {name: i for i, name in enumerate(names)}

    def means(prefix: str) -> list[float]:
        """`<prefix>0_mean`, `<prefix>1_mean`, ... in order, as many as there are."""
        values, index = [], 0
        while (name := f"{prefix}{index}_mean") in position:
            values.append(float(track_stats[position[name]]))
            index += 1
        return values

    return {
        "mfcc": means("mfcc"),
        "chroma": means("chroma"),
        "contrast": means("contrast"),
        **{
            name: float(track_stats[position[f"{name}_mean"]])
            for name in ("centroid", "rolloff", "zcr", "rms")
        },
        "tempo": float(track_stats[position["tempo_bpm"]]),
    }


def run_librosa(data: Path, out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    import librosa  # noqa: F401  (timed: part of the start-up cost)
    import polars as pl

    imported = time.perf_counter()
    tracks = {path.name: _librosa_summary(path) for path in clip_paths(data)}
    # Persist the summaries as a feature table, as a real script would.
    pl.DataFrame(
        {
            "file": list(tracks),
            "mfcc_mean": [t["mfcc"] for t in tracks.values()],
            "chroma_mean": [t["chroma"] for t in tracks.values()],
            "tempo": [t["tempo"] for t in tracks.values()],
        }
    ).write_parquet(out_dir / "librosa_features.parquet")
    return {
        "import_s": imported - started,
        "work_s": time.perf_counter() - imported,
        "tracks": tracks,
    }


def run_core(data: Path, out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    import torch

    from tasks.audio.decoding import AudioConfig, decode_audio
    from tasks.audio.features import FeatureConfig, extractor_for, summary_feature_names

    imported = time.perf_counter()
    # One core, as the librosa loop; torch's two intra-op threads also spin-wait badly when
    # other processes hold the cores, which would measure the machine's load, not the code.
    torch.set_num_threads(1)
    config = FeatureConfig()
    names = summary_feature_names(config)
    extractor = extractor_for(config)
    tracks = {}
    for path in clip_paths(data):
        audio = decode_audio(path, AudioConfig(), sample_rate=config.sample_rate)
        tracks[path.name] = _ours_summary(extractor(audio.samples).track_stats, names)
    return {
        "import_s": imported - started,
        "work_s": time.perf_counter() - imported,
        "tracks": tracks,
    }


def collect_cli_result(workdir: Path) -> dict[str, Any]:
    """The summaries a CLI ingest stored (read after its timing ended)."""
    import polars as pl

    from tasks.audio.features import FeatureConfig, summary_feature_names
    from tasks.audio.ingest import load_track_features
    from tasks.core.workspace import Workspace

    workspace = Workspace.open(workdir)
    table = pl.read_parquet(workspace.tracks_table)
    if (table["status"] != "ok").any():
        raise RuntimeError(f"ingest quarantined benchmark clips: {workspace.quarantine_report}")
    config = FeatureConfig()
    names = summary_feature_names(config)
    tracks = {}
    for path, sha256 in table.select("path", "sha256").iter_rows():
        stats = load_track_features(workspace, config.key, sha256).track_stats
        tracks[Path(path).name] = _ours_summary(stats, names)
    return {"tracks": tracks}


WORKERS = {"librosa": run_librosa, "core": run_core}


def subprocess_environment(stores: Path, **settings: str) -> dict[str, str]:
    """A subprocess's environment: no Prefect settings of this shell (each side gets its own
    server or serve's), MLflow on `stores/mlflow.db`, then `settings`. No PYTHONPATH: the
    project is installed (`pip install -e .`), as for a user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"MLFLOW_TRACKING_URI": f"sqlite:///{stores / 'mlflow.db'}", **settings}


def serve_state(scratch: Path) -> Path:
    return scratch / "serve_state"


@contextlib.contextmanager
def running_serve(scratch: Path) -> Iterator[None]:
    """`python -m flows serve` (Prefect server, worker, MLflow UI) for the ours_serve side."""
    state = serve_state(scratch)
    stores = scratch / "warm_stores"
    stores.mkdir(parents=True, exist_ok=True)
    env = subprocess_environment(stores)
    ports = ["--prefect-port", str(_free_port()), "--mlflow-port", str(_free_port())]
    ports += [
        "--optuna-port",
        str(_free_port()),
        "--optuna-storage",
        f"sqlite:///{stores}/optuna.db",
    ]
    with open(scratch / "serve.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--state-dir", str(state), *ports],
            cwd=stores,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 300
        while not (state / "prefect" / "serve.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start; see {scratch / 'serve.log'}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
