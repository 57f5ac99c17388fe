"""The pretrained extractor: the original's preprocessing, patching, per-patch outputs, caching."""

from __future__ import annotations

import threading
from pathlib import Path

import librosa
import numpy as np
import pytest

from tasks.audio.features import DamagedFeatureFile
from tasks.audio.pretrained import (
    PRETRAINED_SAMPLE_RATE,
    PretrainedConfig,
    PretrainedExtractor,
    PretrainedFeatures,
    patch_starts,
    pretrained_extractor_for,
)

SR = PRETRAINED_SAMPLE_RATE
PATCH_S = 187 * 256 / SR  # 2.992 s


def _music(seconds: float, seed: int = 0) -> np.ndarray:
    """A chord that changes every second over some noise: different patches sound different."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    root = 110.0 * 2 ** (np.floor(t) % 5 / 4)
    y = sum(0.2 * np.sin(2 * np.pi * root * r * t) for r in (1, 1.25, 1.5, 2))
    return (y + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def extractor() -> PretrainedExtractor:
    return pretrained_extractor_for(PretrainedConfig(device="cpu", batch_size=4))


def test_log_mel_is_the_originals(extractor: PretrainedExtractor) -> None:
    """librosa's mel power, float16 then float32, log10(10000 x + 1) (extractor.batch_data)."""
    audio = _music(2.0)
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=256, n_fft=512, n_mels=96).T
    expected = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    ours = extractor.log_mel(audio).numpy()
    assert ours.shape == expected.shape
    assert np.isfinite(ours).all()  # the float16 product would overflow to inf
    # float16 rounding may flip for values on a rounding boundary: a tiny difference at most
    np.testing.assert_allclose(ours, expected, atol=2e-3, rtol=0)


@pytest.mark.parametrize(
    ("n_frames", "max_patches", "expected"),
    [
        (1876, None, list(range(10))),  # 30 s: the partial last patch is dropped
        (186, None, [0]),  # shorter than a patch: one (padded) patch
        (1876, 3, [1, 5, 8]),  # spread over the track, not its first three
        (1876, 1, [5]),
        (1876, 20, list(range(10))),
    ],
)
def test_patches_are_non_overlapping_and_evenly_chosen(
    n_frames: int, max_patches: int | None, expected: list[int]
) -> None:
    assert (patch_starts(n_frames, max_patches) // 187).tolist() == expected


def test_each_patch_gets_its_own_outputs(extractor: PretrainedExtractor) -> None:
    """Unlike the package's extractor, which repeats patch 0's penultimate for every patch."""
    features = extractor(_music(3 * PATCH_S + 0.5))
    assert features.patch_embeddings.shape == (3, 200)
    assert features.patch_tags.shape == (3, 50)
    assert features.patch_embeddings.dtype == np.float32
    assert not np.allclose(features.patch_embeddings[0], features.patch_embeddings[1])
    assert ((features.patch_tags >= 0) & (features.patch_tags <= 1)).all()
    assert features.embedding_mean.shape == (200,)
    assert features.tags_mean.shape == (50,)


def test_a_clip_shorter_than_a_patch_still_has_an_embedding(
    extractor: PretrainedExtractor,
) -> None:
    features = extractor(_music(0.7))
    assert features.patch_embeddings.shape == (1, 200)
    assert np.isfinite(features.patch_embeddings).all()


def test_batching_clips_gives_the_same_numbers_as_one_by_one(
    extractor: PretrainedExtractor,
) -> None:
    clips = [_music(PATCH_S + 0.1, seed=1), _music(2 * PATCH_S + 0.1, seed=2), _music(1.0)]
    batched = extractor.batch(clips)  # 4 patches in one forward of batch_size 4
    assert [f.patch_embeddings.shape[0] for f in batched] == [1, 2, 1]
    for clip, features in zip(clips, batched, strict=True):
        alone = extractor(clip)
        np.testing.assert_allclose(features.patch_embeddings, alone.patch_embeddings, atol=1e-4)
        np.testing.assert_allclose(features.patch_tags, alone.patch_tags, atol=1e-5)


def test_tag_names_follow_the_network() -> None:
    msd = pretrained_extractor_for(PretrainedConfig(device="cpu"))
    assert len(msd.tag_names) == 50
    assert msd.tag_names[:2] == ["rock", "pop"]


def test_features_round_trip_through_an_atomic_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = PretrainedFeatures(
        rng.random((3, 200), dtype=np.float32), rng.random((3, 50), dtype=np.float32)
    )
    path = tmp_path / "track.npz"
    features.save(path)
    loaded = PretrainedFeatures.load(path)
    np.testing.assert_array_equal(loaded.patch_embeddings, features.patch_embeddings)
    np.testing.assert_array_equal(loaded.patch_tags, features.patch_tags)
    assert [p.name for p in tmp_path.iterdir()] == ["track.npz"]  # no temporary file left


def test_a_damaged_features_file_is_one_clear_error_and_moved_aside(tmp_path: Path) -> None:
    # given stored features whose bytes were altered on disk (same length, still a zip)
    features = PretrainedFeatures(np.ones((2, 200), np.float32), np.ones((2, 50), np.float32))
    path = tmp_path / "track.npz"
    features.save(path)
    raw = bytearray(path.read_bytes())
    start = raw.find(np.ones(4, np.float32).tobytes())
    raw[start : start + 4] = np.float32(2.0).tobytes()
    path.write_bytes(bytes(raw))
    # when they are read, then the error names the file and it is moved aside for a re-run
    with pytest.raises(DamagedFeatureFile, match=r"track\.npz"):
        PretrainedFeatures.load(path)
    assert not path.exists()
    assert (tmp_path / "track.npz.damaged").exists()


def test_the_key_changes_with_what_changes_the_outputs_only() -> None:
    base = PretrainedConfig()
    assert base.key == PretrainedConfig(device="cpu", batch_size=8).key
    assert base.key != PretrainedConfig(network="MTT_musicnn").key
    assert base.key != PretrainedConfig(max_patches=3).key
    assert len(base.key) == 12


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="network"):
        PretrainedConfig(network="MSD_vgg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_patches"):
        PretrainedConfig(max_patches=0)


def test_one_extractor_per_config_across_threads() -> None:
    config = PretrainedConfig(device="cpu", batch_size=3)
    found: list[PretrainedExtractor] = []
    threads = [
        threading.Thread(target=lambda: found.append(pretrained_extractor_for(config)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4
    assert all(extractor is found[0] for extractor in found)
