"""Random generators of the demo data set, one per purpose, track or block.

Every generator is seeded from (seed, purpose, numbers...), so streams of different purposes,
tracks or blocks never coincide, and track k draws from generators seeded from (seed, k) only:
its files are byte-identical whatever the number of tracks asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TypeVar

import numpy as np

_Item = TypeVar("_Item")


class Stream(IntEnum):
    """Purpose of a generator. The values are part of every seed: changing one changes the data."""

    METADATA = 0  # per track: title, artist, lyrics file name
    AUDIO = 1  # per track: everything synthesize_track draws
    LYRICS = 2  # per track: lyric lines and LRC timing
    LANGUAGE = 3  # per genre: offset of the language sequence
    ORPHANS = 4  # once: lyrics files that belong to no track
    LYRICS_STYLES = 5  # per block: how non-Bangla tracks provide lyrics
    BANGLA_LYRICS_STYLES = 6  # per block: how Bangla tracks provide lyrics
    BANGLA_VARIANTS = 7  # per block: script and code-mixing of Bangla lyrics


def stream_rng(seed: int, stream: Stream, *numbers: int) -> np.random.Generator:
    """The generator of `stream` for the data set `seed`, numbered by `numbers` (track index,
    genre index or block)."""
    return np.random.default_rng([seed, int(stream), *numbers])


def pick(rng: np.random.Generator, items: Sequence[_Item]) -> _Item:
    """One of `items`, uniformly, with exactly one draw from `rng` (`rng.choice` would turn
    tuples and strings into numpy values)."""
    return items[int(rng.integers(len(items)))]
