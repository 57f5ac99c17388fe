"""The held-out objective: cluster counts, and scores that rank useful latents above useless
ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tasks.core.errors import UserInputError
from tasks.tuning.objective import HeldOutSplit, score_latents
from tasks.tuning.space import ClusteringChoice, SearchSettings


def _split(genres: list[str]) -> HeldOutSplit:
    n = len(genres)
    return HeldOutSplit(
        track_ids=[f"t{i}" for i in range(n)],
        shas=[""] * n,
        train=np.arange(0, n, 2),
        validation=np.arange(1, n, 2),
        genres=genres,
    )


@pytest.mark.parametrize(
    ("genres", "settings", "expected"),
    [
        (["rock", "jazz"] * 8, {"objective": "silhouette"}, None),  # tuned in n_clusters_range
        (["rock", "jazz"] * 8, {"objective": "nmi"}, 2),  # one cluster per genre
        (["rock", "jazz"] * 8, {"objective": "nmi", "n_clusters": 3}, 3),
        (["rock"] * 16, {"objective": "ari"}, "1 distinct genre"),
        (["rock", "jazz"] * 8, {"n_clusters": 8}, "needs at least 9 training tracks"),
    ],
)
def test_fixed_cluster_count_follows_the_objective_and_the_training_tracks(
    genres: list[str], settings: dict[str, Any], expected: int | str | None
) -> None:
    split = _split(genres)  # 8 training tracks
    search = SearchSettings(model="mlp_vae", **settings)
    if isinstance(expected, str):
        # a mistake the user can fix: the command line prints it as one line
        with pytest.raises(UserInputError, match=expected):
            split.fixed_n_clusters(search)
    else:
        assert split.fixed_n_clusters(search) == expected


def test_held_out_score_separates_good_from_useless_latents() -> None:
    # given 20 tracks of two genres; the training tracks are the even ones
    genres = ["rock", "rock", "jazz", "jazz"] * 5
    split = _split(genres)
    rng = np.random.default_rng(0)
    centres = np.where(np.array(genres)[:, None] == "rock", 5.0, -5.0)
    separated = centres + rng.normal(size=(20, 3))
    choice = ClusteringChoice(algorithm="kmeans", n_clusters=2)

    # then latents that separate the genres score high on the held-out tracks ...
    good = score_latents(separated, split, choice, "silhouette", seed=0)
    assert good.value > 0.7
    assert good.n_clusters_found == 2
    assert score_latents(separated, split, choice, "nmi", seed=0).value == pytest.approx(1.0)
    # ... and latents that put every held-out track in one cluster get the worst value
    collapsed = separated.copy()
    collapsed[split.validation] = separated[split.train[0]]
    useless = score_latents(collapsed, split, choice, "silhouette", seed=0)
    assert useless.value == -1.0
    assert "cluster" in useless.reason
