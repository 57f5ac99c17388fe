"""Study storage: a study is resumed only with the settings it was created with."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tasks.core.errors import UserInputError
from tasks.tuning.space import SearchSettings
from tasks.tuning.storage import StudyMismatchError, make_storage, open_study


def test_resuming_a_study_with_other_settings_is_refused(tmp_path: Path) -> None:
    storage = make_storage(f"sqlite:///{tmp_path / 'optuna.db'}", stale_after_s=60)
    first = SearchSettings(model="mlp_vae", epochs=5)
    kwargs = {"fingerprint": "abc", "feature_key": "k", "pruner": optuna.pruners.NopPruner()}
    open_study(storage, "s", first, **kwargs)
    assert open_study(storage, "s", first, **kwargs).user_attrs["uses_labels"] is False
    with pytest.raises(StudyMismatchError, match="epochs: study has 5, asked 6"):
        open_study(storage, "s", SearchSettings(model="mlp_vae", epochs=6), **kwargs)
    # a mistake the user fixes (same settings or another study name): one line, no traceback
    with pytest.raises(UserInputError, match="fingerprint"):
        open_study(storage, "s", first, **{**kwargs, "fingerprint": "other"})
