"""A study session: open (or resume) the study, fail stale trials, run trials until the study
holds the requested number of finished ones, and log where it stands.

`StudySettings.trials` means "until the study holds N finished (complete + pruned) trials":
running the same session again resumes an interrupted study and tops it up; a larger N extends
it. Trials that fail (a diverging loss, a configuration the data cannot support) do not count
and are replaced; several failures in a row stop the study (`TuningError`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Literal

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tasks.core.workspace import Workspace
from tasks.tuning.errors import TuningError
from tasks.tuning.objective import TRIAL_ERRORS, EpochScorer, HeldOutSplit, TrialObjective
from tasks.tuning.space import SearchSettings
from tasks.tuning.storage import (
    StudyTarget,
    default_study_name,
    fail_stale_trials,
    finished_trials,
    make_storage,
    open_study,
)
from tasks.tuning.storage_url import default_storage_url
from tasks.tuning.summary import StudySummary, log_study, summarize

PrunerKind = Literal["median", "hyperband", "none"]


class StudySettings(BaseModel):
    """How a session runs a study: how many trials, in parallel or not, pruned how, and where
    the study is stored. Unlike `SearchSettings`, these may change between sessions of one
    study."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trials: int = Field(
        20,
        ge=1,
        description="Run until the study holds this many finished (complete + pruned) trials; "
        "running again resumes and tops up.",
    )
    jobs: int = Field(
        1,
        ge=1,
        description="Trials in parallel: threads of this process, or with --task-runner dask "
        "trial loops in the cluster's worker processes.",
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Start no new trial after this many seconds (this session)."
    )
    pruner: PrunerKind = Field("median", description="median, hyperband or none.")
    pruner_startup_trials: int = Field(
        5, ge=0, description="Median pruner: trials completed before any is pruned."
    )
    pruner_warmup_epochs: int = Field(
        3, ge=0, description="Epochs before a trial may be pruned (hyperband: minimum resource)."
    )
    stale_after_s: int = Field(
        60,
        ge=1,
        description="A RUNNING trial whose heartbeat is silent this long is from a dead process.",
    )
    max_consecutive_failures: int = Field(
        5, ge=1, description="Stop the study after this many failed trials in a row."
    )
    storage: str | None = Field(
        None, description="Optuna storage (SQLAlchemy URL); empty: sqlite:///<workdir>/optuna.db."
    )
    study_name: str | None = Field(
        None, description="Empty: <model>-<data fingerprint>[-<objective> when not silhouette]."
    )

    @field_validator("storage")
    @classmethod
    def _parseable_url(cls, url: str | None) -> str | None:
        # Checked here so that a typo fails before the ingest, naming the field.
        if url is not None:
            try:
                make_url(url)
            except ArgumentError:
                raise ValueError(
                    f"{url!r} is not a SQLAlchemy URL; use e.g. sqlite:///path/optuna.db or "
                    "postgresql://user:password@host/database"
                ) from None
        return url


def locate_study(
    settings: StudySettings,
    search: SearchSettings,
    *,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
) -> StudyTarget:
    """The study a session works on: the named one, else `<model>-<fingerprint>[-<objective>]`,
    in the given storage, else the work dir's `optuna.db`."""
    return StudyTarget(
        name=settings.study_name or default_study_name(search.model, fingerprint, search.objective),
        storage_url=settings.storage or default_storage_url(workspace),
        workspace=workspace,
        feature_key=feature_key,
        fingerprint=fingerprint,
    )


def make_pruner(
    kind: PrunerKind, *, startup_trials: int, warmup_epochs: int, max_epochs: int
) -> optuna.pruners.BasePruner:
    """Median (stop a trial below the median of earlier trials at the same epoch), Hyperband,
    or none. `warmup_epochs`: epochs before any trial may be stopped."""
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs, interval_steps=1
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, warmup_epochs), max_resource=max_epochs, reduction_factor=3
        )
    return optuna.pruners.NopPruner()


class _FailureGuard:
    """Stops the study after `limit` failed trials in a row (a broken setup, not bad luck)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.last_error = ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.in_a_row += 1
            self.last_error = trial.user_attrs.get("error", "see the log")
            if self.in_a_row >= self.limit:
                study.stop()
        else:
            self.in_a_row = 0

    @property
    def tripped(self) -> bool:
        return self.in_a_row >= self.limit


def optimize_until(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    target_finished: int,
    jobs: int,
    timeout_s: float | None,
    max_consecutive_failures: int,
) -> None:
    """Run trials until the study holds `target_finished` COMPLETE + PRUNED trials (failed ones
    do not count, so they are replaced), or until `timeout_s` has passed.

    Raises TuningError after `max_consecutive_failures` failed trials in a row.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    guard = _FailureGuard(max_consecutive_failures)

    def recording_errors(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except TRIAL_ERRORS as error:
            # Optuna keeps no failure reason; the guard and the trials table read this one.
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:1000])
            raise

    stop_at_target = optuna.study.MaxTrialsCallback(
        target_finished, states=(TrialState.COMPLETE, TrialState.PRUNED)
    )
    while (remaining := target_finished - finished_trials(study)) > 0:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        study.optimize(
            recording_errors,
            n_trials=remaining,
            timeout=left,
            n_jobs=jobs,
            catch=TRIAL_ERRORS,
            callbacks=[stop_at_target, guard],
        )
        if guard.tripped:
            raise TuningError(
                f"{guard.in_a_row} trials in a row failed; the last one with: {guard.last_error}"
            )


def session_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow or task, a module logger when called directly."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _open(target: StudyTarget, search: SearchSettings, settings: StudySettings) -> optuna.Study:
    """The study with this session's sampler and pruner (they live in the study object, not in
    the storage: every process that runs trials opens it this way)."""
    return open_study(
        make_storage(target.storage_url, stale_after_s=settings.stale_after_s),
        target.name,
        search,
        fingerprint=target.fingerprint,
        feature_key=target.feature_key,
        pruner=make_pruner(
            settings.pruner,
            startup_trials=settings.pruner_startup_trials,
            warmup_epochs=settings.pruner_warmup_epochs,
            max_epochs=search.epochs,
        ),
    )


def _open_for_session(
    target: StudyTarget, search: SearchSettings, settings: StudySettings, parent_run_id: str
) -> tuple[optuna.Study, list[int]]:
    """Open the study, fail its stale trials and record this session's run on it; the study and
    the numbers of the trials failed as stale."""
    study = _open(target, search, settings)
    stale = fail_stale_trials(study, older_than_s=settings.stale_after_s)
    record_session(study, parent_run_id)
    return study, stale


# One user attr per session (`mlflow_session:<run id>` = its start, Unix seconds): tune processes
# that open the study at the same moment each add their own key; a shared list would be read,
# extended and written back by both, and one session lost.
SESSION_ATTR_PREFIX = "mlflow_session:"


def record_session(study: optuna.Study, parent_run_id: str) -> None:
    """Note this session's MLflow run on the study."""
    study.set_user_attr(f"{SESSION_ATTR_PREFIX}{parent_run_id}", time.time())


def study_sessions(study: optuna.Study) -> list[str]:
    """The MLflow runs of every session that worked on the study, oldest first."""
    started = {
        key.removeprefix(SESSION_ATTR_PREFIX): value
        for key, value in study.user_attrs.items()
        if key.startswith(SESSION_ATTR_PREFIX)
    }
    return sorted(started, key=started.__getitem__)


class StudySession(BaseModel):
    """A session opened on a study: its MLflow run, its start, the stale trials it failed."""

    model_config = ConfigDict(frozen=True)

    parent_run_id: str
    started: float = Field(description="time.time() when the session opened (see `summarize`).")
    stale: list[int] = Field(default_factory=list)


@task(cache_policy=NO_CACHE, task_run_name="open study {target.name}")
def open_session(
    *, target: StudyTarget, search: SearchSettings, settings: StudySettings, parent_run_id: str
) -> StudySession:
    """Open (or resume) the study, fail stale trials and record this session on it.

    Raises TuningError: StudyMismatchError (resuming with other settings).
    """
    logger = session_logger()
    started = time.time()
    study, stale = _open_for_session(target, search, settings, parent_run_id)
    if stale:
        logger.warning("trials %s were left RUNNING by a dead process; marked FAIL", stale)
    logger.info(
        "study %s: %d finished trials of %d wanted; watch it with: %s",
        target.name,
        finished_trials(study),
        settings.trials,
        target.dashboard_command,
    )
    return StudySession(parent_run_id=parent_run_id, started=started, stale=stale)


def trial_runners(settings: StudySettings, *, on_threads: bool) -> list[StudySettings]:
    """How a session's trials run: one `run_trials` with `settings.jobs` threads in this
    process, or, on a cluster, `settings.jobs` of them with one trial at a time each (each in
    its own worker process, all on the shared storage)."""
    if on_threads or settings.jobs == 1:
        return [settings]
    return [settings.model_copy(update={"jobs": 1})] * settings.jobs


@task(cache_policy=NO_CACHE, task_run_name="trials of {target.name}")
def run_trials(
    *,
    target: StudyTarget,
    search: SearchSettings,
    settings: StudySettings,
    experiment: str,
    parent_run_id: str,
) -> list[int]:
    """Run trials of the opened study until it holds `settings.trials` finished ones (other
    callers, threads or processes, may be adding trials to it at the same time); return the
    numbers of the trials this call ran. Each trial is a child run of `parent_run_id`.

    Raises TuningError: too few tracks, a label objective on data without genre labels, or
    repeated failing trials.
    """
    split = HeldOutSplit.read(
        target.workspace, validation_fraction=search.validation_fraction, seed=search.seed
    )
    study = _open(target, search, settings)
    objective = TrialObjective(
        target=target,
        scorer=EpochScorer(target.workspace, target.feature_key, split, search),
        n_clusters=split.fixed_n_clusters(search),
        experiment=experiment,
        parent_run_id=parent_run_id,
        log=session_logger().info,
    )
    # Trials in parallel threads share the cores; one torch pool per core is the most that helps.
    threads_before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.jobs))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own per-trial lines say more
    try:
        optimize_until(
            study,
            objective,
            target_finished=settings.trials,
            jobs=settings.jobs,
            timeout_s=settings.timeout_s,
            max_consecutive_failures=settings.max_consecutive_failures,
        )
    finally:
        torch.set_num_threads(threads_before)
    return objective.trial_numbers


@task(cache_policy=NO_CACHE, task_run_name="summarize study {target.name}")
def summarize_session(
    *,
    target: StudyTarget,
    search: SearchSettings,
    settings: StudySettings,
    session: StudySession,
    trials: list[int],
) -> StudySummary:
    """The study after this session's `trials`, logged to the session's MLflow run."""
    study = _open(target, search, settings)
    summary = summarize(
        study,
        target,
        search,
        session_trials=sorted(trials),
        stale=session.stale,
        started=session.started,
    )
    log_study(session.parent_run_id, study, summary, target.output_dir)
    session_logger().info("%s; inspect it with: %s", summary.describe(), target.dashboard_command)
    return summary
