"""Study storage: a study is resumed only with the settings it was created with."""

from __future__ import annotations

import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

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


def _dashboard_json(storage: optuna.storages.RDBStorage, path: str) -> dict:
    """What optuna-dashboard's API answers at `path` (its WSGI app, called in-process)."""
    import optuna_dashboard

    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    statuses: list[str] = []
    app = optuna_dashboard.wsgi(storage)
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"], body[:500]
    return json.loads(body)


@pytest.mark.parametrize("objective", ["silhouette", "nmi"])
def test_optuna_dashboard_labels_the_objective_by_its_metric_name(
    tmp_path: Path, objective: str
) -> None:
    # given a study created before studies were named (Optuna's default: no name) ...
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    storage = make_storage(url, stale_after_s=60)
    search = SearchSettings(model="mlp_vae", objective=objective)
    # ... when a session opens it
    open_study(
        storage, "s", search, fingerprint="f", feature_key="k", pruner=optuna.pruners.NopPruner()
    )
    # then the name is stored with the study, and the dashboard shows it as the objective's name
    assert optuna.load_study(study_name="s", storage=url).metric_names == [
        f"validation_{objective}"
    ]
    study_id = storage.get_study_id_from_name("s")
    shown = _dashboard_json(storage, f"/api/studies/{study_id}")
    assert shown["objective_names"] == [f"validation_{objective}"]
