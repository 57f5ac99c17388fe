"""Removing the language signal from lyrics embeddings: per-group mean subtraction.

A multilingual encoder still places a text partly by its language and script; on our check set
that signal outweighs the theme (bench/lyrics_encoders.py). Subtracting the mean vector of each
detected language-and-script group (`bn:Beng` and `bn:Latn` are two groups: Bangla and
Banglish) and re-normalizing keeps what songs of one group differ in (their meaning) and drops
what they share (their language).

A group needs `MIN_GROUP_SIZE` lyrics for its own mean: the mean of one or two songs would be
those songs themselves and would wipe them out. Smaller groups, and at predict time groups the
collection never had, get the global mean. The fitted means are stored with the embeddings
(`LanguageCentering` in the sidecar), so new lyrics get the same transform as training.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.lyrics.encoders import l2_normalize

CENTERING_RULE = "lang-script-mean"
CENTERED_SUFFIX = f"+center-{CENTERING_RULE}"
MIN_GROUP_SIZE = 3
UNKNOWN = "und"


def language_group(language: str | None, script: str | None) -> str:
    """The group key of a lyric: "language:script" ("bn:Latn"), "und" for unknown parts."""
    return f"{language or UNKNOWN}:{script or UNKNOWN}"


class LanguageCentering(BaseModel):
    """Per-group mean vectors fitted on a collection's raw lyrics embeddings.

    `groups`: group -> mean vector (groups with at least `min_group_size` lyrics);
    `global_mean`: the mean of all lyrics, used for any other group; `normalize`: whether the
    centred vectors are re-normalized to unit length.
    """

    model_config = ConfigDict(frozen=True)

    rule: Literal["lang-script-mean"] = CENTERING_RULE
    min_group_size: int = MIN_GROUP_SIZE
    groups: dict[str, list[float]]
    global_mean: list[float]
    normalize: bool = True

    @classmethod
    def fit(
        cls, raw: np.ndarray, groups: Sequence[str], *, normalize: bool = True
    ) -> LanguageCentering:
        """Means of `raw` [shape=(n, d)] per group of `groups` (length n)."""
        if raw.shape[0] != len(groups):
            raise ValueError(f"{raw.shape[0]} vectors but {len(groups)} groups")
        raw = np.asarray(raw, dtype=np.float64)
        keys = np.asarray(groups, dtype=object)
        counts = Counter(groups)
        means = {
            group: raw[keys == group].mean(0).tolist()
            for group, count in sorted(counts.items())
            if count >= MIN_GROUP_SIZE
        }
        global_mean = raw.mean(0).tolist() if raw.shape[0] else [0.0] * raw.shape[1]
        return cls(groups=means, global_mean=global_mean, normalize=normalize)

    def apply(self, raw: np.ndarray, groups: Sequence[str]) -> np.ndarray:
        """`raw` [shape=(n, d)] minus each row's group mean (global mean for other groups),
        re-normalized when `self.normalize`; float32 [shape=(n, d)].

        Raises:
            ValueError: the vectors are not as wide as the fitted means (another encoder).
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.shape[0] == 0:
            return raw.reshape(0, len(self.global_mean))
        if raw.shape[1] != len(self.global_mean):
            raise ValueError(
                f"lyrics vectors have {raw.shape[1]} dims, the language means "
                f"{len(self.global_mean)}: they come from another encoder"
            )
        fallback = np.asarray(self.global_mean, dtype=np.float32)
        means = np.stack(
            [np.asarray(self.groups.get(group, fallback), dtype=np.float32) for group in groups]
        )
        centered = raw - means
        return l2_normalize(centered) if self.normalize else centered.astype(np.float32)

    def counts_line(self) -> str:
        """Which groups have their own mean, for logs."""
        own = ", ".join(self.groups) or "none"
        return f"language means for {own}; other groups use the global mean"


def centered_encoder_id(encoder_id: str) -> str:
    """The id of vectors made by `encoder_id` and then language-centred."""
    return f"{encoder_id}{CENTERED_SUFFIX}"


def split_encoder_id(stored_id: str) -> tuple[str, bool]:
    """(the encoder's own id, whether its vectors were language-centred) of a stored id."""
    if stored_id.endswith(CENTERED_SUFFIX):
        return stored_id.removesuffix(CENTERED_SUFFIX), True
    return stored_id, False
