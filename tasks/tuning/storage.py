"""Where studies live: the Optuna RDB storage, opening (or resuming) a study, and stale trials.

Studies live in an Optuna RDB storage and are resumed under their name. Opening a study again
checks that it was made for the same search (`SearchSettings.identity`, the data fingerprint and
the feature key). A trial left RUNNING by a process that died is marked FAIL when the study is
opened again (`fail_stale_trials`); its MLflow run, and the session run that ran it, end as
KILLED.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError, ProgrammingError

from registry.runs import end_run, run_status
from registry.tracking import set_tags
from tasks.core.workspace import Workspace
from tasks.tuning.errors import StudyMismatchError
from tasks.tuning.space import SearchSettings
from tasks.tuning.storage_url import display_url

# Optuna's heartbeat: a running trial writes a timestamp this often (seconds).
HEARTBEAT_SECONDS = 10
# Tries at opening a storage whose tables another process may be creating at the same moment.
SCHEMA_ATTEMPTS = 5


class StudyTarget(BaseModel):
    """Which study a session works on, where it is stored, and the ingested data it measures.

    workspace / feature_key / fingerprint: the work dir, its feature configuration and the data
    set's fingerprint (from the ingest flow).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    storage_url: str
    workspace: Workspace
    feature_key: str
    fingerprint: str

    @property
    def display_storage(self) -> str:
        """The storage URL with any password hidden."""
        return display_url(self.storage_url)

    @property
    def dashboard_command(self) -> str:
        return f"optuna-dashboard {self.display_storage}"

    @property
    def output_dir(self) -> Path:
        """Files a session writes for this study (plots), one folder per study."""
        return self.workspace.tuning_dir(study_tag(self.name))


def default_study_name(model: str, fingerprint: str, objective: str) -> str:
    """`<model>-<fingerprint>`, with `-<objective>` appended for label-based objectives, so a
    study on nmi never resumes one on silhouette."""
    name = f"{model}-{fingerprint}"
    return name if objective == "silhouette" else f"{name}-{objective}"


def study_tag(study_name: str) -> str:
    """A short, path-safe tag of a study name (6 hex digits) for run names and folders."""
    return hashlib.sha256(study_name.encode()).hexdigest()[:6]


def make_storage(url: str, *, stale_after_s: int) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats: a trial that stops beating for `stale_after_s` seconds is
    failed by Optuna itself when the next trial starts.

    Raises sqlalchemy's ArgumentError for a URL it cannot parse (`StudySettings` rejects those
    first), ImportError for a missing DB driver.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Parallel trials and processes share one file; wait for its lock instead of failing.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    heartbeat = max(1, min(HEARTBEAT_SECONDS, stale_after_s // 3))
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=stale_after_s,
                )
        except (IntegrityError, ProgrammingError):
            # Two tune processes opening a new database at once both create Optuna's tables;
            # the one that loses the race finds them made on its next attempt.
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(
    storage: optuna.storages.RDBStorage,
    study_name: str,
    search: SearchSettings,
    *,
    fingerprint: str,
    feature_key: str,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or load it if it exists (resume), and check it is the same search.

    `constant_liar` keeps parallel TPE suggestions away from configurations that are still
    running; the sampler's seed is described in `_sampler_seed`.

    Raises StudyMismatchError when the existing study was made for another model, objective,
    data set or search settings.
    """
    identity = {"search": search.identity(), "fingerprint": fingerprint, "feature_key": feature_key}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=_sampler_seed(storage, study_name, search.seed), constant_liar=True
        )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    _name_objective(study, search.metric_name)
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
        study.set_user_attr("objective", search.objective)
        study.set_user_attr("uses_labels", search.uses_labels)
        study.set_user_attr("model", search.model)
        study.set_user_attr("created", datetime.now().isoformat(timespec="seconds"))
    elif stored != identity:
        differences = _differences(stored, identity)
        raise StudyMismatchError(
            f"study {study_name!r} was created with other settings ({differences}); "
            "use the same settings to resume it, or another --study-name"
        )
    return study


def _name_objective(study: optuna.Study, metric_name: str) -> None:
    """Name the study's one objective (`validation_silhouette`, ...) where Optuna's plots and
    optuna-dashboard read it, instead of their "Objective Value". Done on every open, so studies
    created before the name was set get it too."""
    if study.metric_names == [metric_name]:
        return
    with warnings.catch_warnings():
        # Experimental since Optuna 3.2 and still so in 5.0; the stored attribute is stable.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric_name])


def _sampler_seed(storage: optuna.storages.RDBStorage, study_name: str, seed: int) -> int:
    """The seed mixed with the number of trials so far, so a resumed study does not replay the
    first session's random start; when other processes are running trials of the study at that
    moment, the process id is mixed in too, so parallel processes do not draw the same
    configurations. (Processes started at the very same moment on a new study can still collide
    on their first random draws; start them a few seconds apart.)"""
    entropy = [seed]
    try:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(
            deepcopy=False
        )
        entropy.append(len(trials))
        if any(t.state == TrialState.RUNNING for t in trials):
            entropy.append(os.getpid())
    except KeyError:
        pass  # a new study
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _differences(stored: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key in sorted(set(stored) | set(wanted)):
        old, new = stored.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            nested = _differences(old, new, f"{prefix}{key}.")
            if nested:
                parts.append(nested)
        elif old != new:
            parts.append(f"{prefix}{key}: study has {old!r}, asked {new!r}")
    return "; ".join(parts)


def process_tag() -> str:
    """`host:pid` of this process, stored on each trial it runs (user attr `process`)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_is_alive(tag: str) -> bool | None:
    """Whether the process named by a `host:pid` tag is alive; None when it is on another host."""
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_trials(study: optuna.Study, *, older_than_s: int) -> list[int]:
    """Mark RUNNING trials of dead processes as FAIL, so a resume is not held up by them.

    A trial counts as stale when
    - it was started by a tune process on this machine that no longer exists (its `process`
      user attr holds `host:pid`; a SIGKILLed run is caught at once), or
    - its Optuna heartbeat is older than `older_than_s` seconds (processes on other machines), or
    - it has neither a process tag nor a heartbeat and started more than `older_than_s` seconds
      ago (left by an older version or a manual ask(); nothing tells whether it is alive).

    Their MLflow runs, when known, end as KILLED with the tag `stale=true`, and so do the study
    runs of the sessions that ran them. Returns the trial numbers that were failed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    failed = sorted(before - after) + _fail_trials_of_dead_processes(study, older_than_s)
    _end_runs_of_failed_trials(study, set(failed))
    return sorted(failed)


def _fail_trials_of_dead_processes(study: optuna.Study, older_than_s: int) -> list[int]:
    failed = []
    now = datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        process = trial.user_attrs.get("process")
        started = trial.datetime_start or now
        if process is not None:
            stale = _process_is_alive(process) is False
        else:
            stale = (now - started).total_seconds() > older_than_s
        if stale:
            # skip_if_finished: another process may have finished or failed it meanwhile.
            ended = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            if ended.state == TrialState.FAIL:
                failed.append(trial.number)
    return failed


def _end_runs_of_failed_trials(study: optuna.Study, numbers: set[int]) -> None:
    """End the MLflow runs of the trials `numbers` as KILLED, and the session runs that ran them:
    a session that ran a stale trial died with it, and its run would stay RUNNING forever."""
    dead_sessions: set[str] = set()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if trial.number not in numbers:
            continue
        if run_id := trial.user_attrs.get("mlflow_run_id"):
            end_run(run_id, "KILLED")
            set_tags(run_id, {"stale": "true", "optuna_state": "FAIL"})
        if session := trial.user_attrs.get("mlflow_parent_run_id"):
            dead_sessions.add(session)
    for session in dead_sessions:
        if run_status(session) == "RUNNING":
            end_run(session, "KILLED")
            set_tags(session, {"ended_by": "a later session found its process dead"})


def finished_trials(study: optuna.Study) -> int:
    """COMPLETE + PRUNED trials (what the `trials` setting counts)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
