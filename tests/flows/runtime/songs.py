"""A few seconds of synthetic songs in the GTZAN layout, for tests that run the ingest flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 22050


def write_songs(root: Path, count: int = 3, *, seconds: float = 2.5) -> Path:
    """`count` noisy sine tones as `root/genres_original/rock/rock.0000i.wav`; returns `root`."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    for i in range(count):
        samples = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.02 * rng.standard_normal(t.size)
        path = root / "genres_original" / "rock" / f"rock.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples.astype(np.float32), SAMPLE_RATE)
    return root
