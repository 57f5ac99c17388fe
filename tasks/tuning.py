"""Hyperparameter search with Optuna: search spaces, the held-out clustering objective, pruning,
resumable RDB studies, and one nested MLflow run per trial.

A trial draws a configuration from three spaces, each declared next to the config it fills:

- the model's own `search_space(trial)` (`models.zoo.search_space`: latent_dim, beta, ...),
- the trainer's `TrainConfig.search_space(trial)` (learning_rate, batch_size, kl_warmup_epochs),
- `ClusteringChoice.search_space(trial)` below (cluster_algorithm, n_clusters).

It trains with `tasks.representation.train_and_encode` (a child MLflow run of the study's run,
never registered) and is scored on held-out tracks: the clustering is fitted on the latents of
the training tracks, the validation tracks are assigned to it with `tasks.clustering.assign`, and
the objective is measured on the validation tracks only:

- `silhouette` (default, unsupervised): silhouette of the validation tracks' assignments, in the
  space the clustering was fitted in (standardised with the training tracks' statistics, except
  for models whose latent units share one scale; the evaluation flow makes the same choice).
- `nmi` / `ari` (only on request): agreement of the assignments with the genre labels. A study
  on such an objective uses labels; the study, every trial and every MLflow run are marked
  `uses_labels=true`.

The same score is reported every `report_every` epochs as an intermediate value, so a pruner can
stop a trial whose clustering lags behind the others. A clustering that separates nothing on the
validation tracks (all in one cluster, or every track alone) scores the worst value of the
objective (-1 for silhouette and ARI, 0 for NMI) instead of NaN, so such trials rank last.

Studies live in an Optuna RDB storage and are resumed under their name. A trial left RUNNING by a
process that died is marked FAIL when the study is opened again (see `fail_stale_trials`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import optuna
import polars as pl
import torch
from optuna.trial import FrozenTrial, TrialState
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.config import SuggestingTrial
from models.zoo import model_class
from models.zoo import search_space as model_search_space
from registry.tracking import (
    client,
    experiment_id,
    log_artifact,
    log_metrics,
    log_params,
    log_table,
    set_tags,
)
from tasks.clustering import assign, cluster, fitted_to_json
from tasks.features import resolve_device
from tasks.ingest import usable_tracks
from tasks.metrics import external_metrics, internal_metrics
from tasks.representation import (
    ModelSpec,
    TrainOutput,
    read_latents,
    side_information,
    train_and_encode,
)
from tasks.training import TrainConfig, encode_tracks
from tasks.training_data import CropArrays, CropBatches, gather_crops, split_tracks
from tasks.workspace import Workspace

Objective = Literal["silhouette", "nmi", "ari"]
TunedAlgorithm = Literal["kmeans", "gmm", "agglomerative"]
PrunerKind = Literal["median", "hyperband", "none"]

EXTERNAL_OBJECTIVES: tuple[str, ...] = ("nmi", "ari")
# Value given to a clustering that separates nothing on the validation tracks: the worst the
# objective can take, so such a trial ranks last without making the study's numbers NaN.
WORST_VALUE: dict[str, float] = {"silhouette": -1.0, "nmi": 0.0, "ari": -1.0}
# Optuna's heartbeat: a running trial writes a timestamp this often (seconds).
HEARTBEAT_SECONDS = 10
# Exceptions that end one trial as FAIL but let the study go on: a diverging loss
# (NonFiniteLossError is a RuntimeError), a configuration the data cannot support (ValueError,
# e.g. ClusteringError). Anything else (a bug, Ctrl-C) stops the study.
TRIAL_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError)
TRIAL_RUN_PREFIX = "trial"


class TuningError(RuntimeError):
    """The study cannot go on; the message names the cause and the fix."""


class StudyMismatchError(ValueError):
    """An existing study was created with other settings than the ones asked for now."""


# ----------------------------------------------------------------------------- settings


class ClusteringChoice(BaseModel):
    """How a trial's latents are clustered before they are scored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: TunedAlgorithm = Field("kmeans", description="Clustering algorithm.")
    n_clusters: int = Field(8, ge=2, description="Number of clusters.")

    @staticmethod
    def search_space(
        trial: SuggestingTrial,
        *,
        algorithms: Sequence[str],
        n_clusters_range: tuple[int, int],
        fixed_n_clusters: int | None,
    ) -> dict[str, Any]:
        """`algorithm` from `algorithms` (param `cluster_algorithm`); `n_clusters` fixed when
        given (e.g. the number of genres), else drawn from `n_clusters_range` (both ends
        included)."""
        algorithm = trial.suggest_categorical("cluster_algorithm", list(algorithms))
        if fixed_n_clusters is not None:
            n_clusters = fixed_n_clusters
        else:
            n_clusters = trial.suggest_int("n_clusters", n_clusters_range[0], n_clusters_range[1])
        return {"algorithm": algorithm, "n_clusters": n_clusters}


class SearchSettings(BaseModel):
    """What a study searches and how it scores trials.

    These settings define the study: resuming it with different ones would mix incomparable
    trials, so they are stored on the study and checked when it is opened again (see
    `identity`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="Model-zoo name.")
    objective: Objective = Field("silhouette", description="What the study maximises.")
    epochs: int = Field(15, ge=1, description="Maximum epochs of every trial.")
    seed: int = Field(0, description="Seed of weights, held-out split, sampler and clustering.")
    validation_fraction: float = Field(
        0.2, ge=0.05, lt=0.5, description="Held-out tracks the objective is measured on."
    )
    condition: Literal["language", "genre"] = Field(
        "language", description="CVAE condition; 'genre' uses labels."
    )
    n_clusters: int | None = Field(
        None,
        ge=2,
        description="Fixed number of clusters. Empty: the number of genres for nmi/ari, "
        "tuned within n_clusters_range for silhouette.",
    )
    n_clusters_range: tuple[int, int] = Field(
        (2, 12), description="Range of n_clusters searched when it is tuned (inclusive)."
    )
    cluster_algorithms: tuple[TunedAlgorithm, ...] = Field(
        ("kmeans", "gmm", "agglomerative"),
        min_length=1,
        description="Clustering algorithms searched (param cluster_algorithm).",
    )
    report_every: int | None = Field(
        None,
        ge=1,
        description="Epochs between intermediate objective values; empty: 1 for vector "
        "models, 3 for spectrogram models (their encoding costs more).",
    )
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")

    @model_validator(mode="after")
    def _check(self) -> SearchSettings:
        model_class(self.model)  # ValueError listing the valid names
        low, high = self.n_clusters_range
        if not 2 <= low <= high:
            raise ValueError(
                f"n_clusters_range must satisfy 2 <= low <= high; got {self.n_clusters_range}"
            )
        return self

    @property
    def uses_labels(self) -> bool:
        """True when the objective or the model's condition reads the genre labels."""
        return self.objective in EXTERNAL_OBJECTIVES or (
            model_class(self.model).uses_condition and self.condition == "genre"
        )

    @property
    def standardize_latents(self) -> bool:
        """Standardise latent dimensions before clustering, as the evaluation does: not for
        models whose prior puts every latent unit on one scale (`latent_units_comparable`)."""
        # getattr: models that predate the flag are clustered standardised, as before it.
        return not model_class(self.model).latent_units_comparable

    @property
    def epochs_between_reports(self) -> int:
        if self.report_every is not None:
            return self.report_every
        return 1 if model_class(self.model).input_kind == "vector" else 3

    def identity(self) -> dict[str, Any]:
        """The settings that must match when a study is resumed (reporting and device may
        change)."""
        return self.model_dump(mode="json", exclude={"report_every", "device"})


@dataclass(frozen=True)
class TrialSettings:
    """One point of the search space: what to train and how to cluster it."""

    spec: ModelSpec
    clustering: ClusteringChoice


def suggest_trial_settings(
    trial: SuggestingTrial,
    search: SearchSettings,
    *,
    n_clusters: int | None,
    features_label: str,
    epochs: int | None = None,
) -> TrialSettings:
    """Draw a configuration: model space + trainer space + clustering space.

    n_clusters: fixed cluster count (None: tuned in `search.n_clusters_range`).
    features_label: the run's variant name (it also names its model folder).
    epochs: override of `search.epochs` (the final retraining trains longer).

    Raises pydantic.ValidationError (a ValueError) if a space suggests a value its config rejects.
    """
    overrides = model_search_space(search.model, trial)
    trainer = TrainConfig.search_space(trial)
    clustering = ClusteringChoice.search_space(
        trial,
        algorithms=search.cluster_algorithms,
        n_clusters_range=search.n_clusters_range,
        fixed_n_clusters=n_clusters,
    )
    train = TrainConfig(
        epochs=epochs or search.epochs,
        seed=search.seed,
        validation_fraction=search.validation_fraction,
        device=search.device,
        **trainer,
    )
    spec = ModelSpec(
        model=search.model,
        overrides=overrides,
        train=train,
        condition=search.condition,
        features_label=features_label,
    )
    return TrialSettings(spec=spec, clustering=ClusteringChoice(**clustering))


def settings_from_params(
    params: dict[str, Any],
    search: SearchSettings,
    *,
    n_clusters: int | None,
    features_label: str,
    epochs: int | None = None,
) -> TrialSettings:
    """The configuration a finished trial's `params` stand for (replays the search space)."""
    return suggest_trial_settings(
        optuna.trial.FixedTrial(params),
        search,
        n_clusters=n_clusters,
        features_label=features_label,
        epochs=epochs,
    )


# ----------------------------------------------------------------------------- the objective


@dataclass(frozen=True)
class ObjectiveScore:
    """A clustering's score on the validation tracks.

    value: the objective (WORST_VALUE when undefined); reason: why it was undefined, or "".
    n_clusters_found: clusters among the validation tracks.
    """

    value: float
    reason: str
    n_clusters_found: int
    fitted: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class HeldOutSplit:
    """The tracks of a work dir in the trainer's order and the trainer's held-out split.

    track_ids / shas: ok tracks sorted by id (as `train_and_encode` orders them).
    train, validation: [shape=(n,) int] indices into track_ids.
    genres: [len n_tracks] genre label per track (None when unknown).
    """

    track_ids: list[str]
    shas: list[str]
    train: np.ndarray
    validation: np.ndarray
    genres: list[str | None]

    @classmethod
    def read(cls, workspace: Workspace, *, validation_fraction: float, seed: int) -> HeldOutSplit:
        """Raises ValueError when there are too few tracks to hold any out."""
        tracks = usable_tracks(workspace)
        train, validation = split_tracks(tracks.height, validation_fraction, seed)
        if len(validation) < 3:
            raise ValueError(
                f"tuning needs at least 3 held-out tracks to score a clustering; "
                f"{tracks.height} usable tracks with validation_fraction={validation_fraction} "
                f"give {len(validation)} (use at least 10 tracks or a larger fraction)"
            )
        genres = tracks["genre"].to_list() if "genre" in tracks.columns else [None] * tracks.height
        return cls(
            track_ids=tracks["track_id"].to_list(),
            shas=tracks["sha256"].to_list(),
            train=train,
            validation=validation,
            genres=[g if g not in ("", None) else None for g in genres],
        )

    @property
    def n_genres(self) -> int:
        return len({g for g in self.genres if g is not None})


def score_latents(
    mu: np.ndarray,
    split: HeldOutSplit,
    clustering: ClusteringChoice,
    objective: Objective,
    *,
    seed: int,
    standardize: bool = True,
) -> ObjectiveScore:
    """Fit `clustering` on the training tracks' latents, assign the validation tracks, score.

    mu: [shape=(n_tracks, latent_dim)] track latents in `split.track_ids` order.
    standardize: standardise each latent dimension (with the training tracks' statistics)
        before clustering; the silhouette is measured in that same space.

    Raises ClusteringError (a ValueError) for non-finite latents or an n_clusters larger than
    the training tracks allow.
    """
    fit = cluster(
        mu[split.train],
        algorithm=clustering.algorithm,
        n_clusters=clustering.n_clusters,
        seed=seed,
        standardize_input=standardize,
    )
    held_out = mu[split.validation]
    labels, _ = assign(fit.fitted, held_out)
    found = len(np.unique(labels))
    if objective == "silhouette":
        # The space the clustering was fitted in: the training tracks' standardisation.
        standardized = (held_out - np.asarray(fit.fitted["mean"])) / np.asarray(fit.fitted["scale"])
        metrics = internal_metrics(standardized, labels, standardize_input=False, seed=seed)
        value, reason = metrics["silhouette"], metrics["internal_reason"]
    else:
        truth = [split.genres[i] for i in split.validation]
        metrics = external_metrics(truth, labels)
        value, reason = metrics[objective], metrics["external_reason"]
    if not math.isfinite(value):
        value = WORST_VALUE[objective]
        reason = reason or f"{objective} undefined"
    return ObjectiveScore(
        value=float(value), reason=reason, n_clusters_found=found, fitted=fit.fitted
    )


class EpochScorer:
    """Encodes every track with the model being trained and scores it (intermediate values).

    Built once per study and shared by the trial threads: it only reads the memory-mapped crops.
    """

    def __init__(
        self,
        workspace: Workspace,
        feature_key: str,
        split: HeldOutSplit,
        search: SearchSettings,
    ) -> None:
        model_cls = model_class(search.model)
        # Gathering writes the crop array on first use; doing it here, before any trial thread
        # starts, keeps parallel trials from writing the same file.
        self.arrays: CropArrays = gather_crops(
            workspace, feature_key, split.track_ids, split.shas, model_cls.input_kind
        )
        tracks = usable_tracks(workspace)
        side, _ = side_information(
            model_cls, ModelSpec(model=search.model, condition=search.condition), workspace, tracks
        )
        self.batches = CropBatches(
            self.arrays,
            np.arange(len(split.track_ids)),
            side,
            batch_size=512,
            shuffle=False,
            device=resolve_device(search.device),
        )
        self.split = split
        self.search = search

    def score(self, model: Any, clustering: ClusteringChoice) -> ObjectiveScore:
        latents = encode_tracks(model, self.batches, self.split.track_ids)
        return score_latents(
            latents.mu,
            self.split,
            clustering,
            self.search.objective,
            seed=self.search.seed,
            standardize=self.search.standardize_latents,
        )


# ----------------------------------------------------------------------------- storage


def default_storage_url(workspace: Workspace) -> str:
    """`sqlite:///<workdir>/optuna.db` (absolute path)."""
    return f"sqlite:///{workspace.root / 'optuna.db'}"


def default_study_name(model: str, fingerprint: str, objective: str) -> str:
    """`<model>-<fingerprint>`, with `-<objective>` appended for label-based objectives, so a
    study on nmi never resumes one on silhouette."""
    name = f"{model}-{fingerprint}"
    return name if objective == "silhouette" else f"{name}-{objective}"


def display_url(url: str) -> str:
    """The storage URL with any password hidden (for logs and tags)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def make_storage(url: str, *, stale_after_s: int) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats: a trial that stops beating for `stale_after_s` seconds is
    failed by Optuna itself when the next trial starts.

    Raises ValueError for a URL SQLAlchemy cannot parse, ImportError for a missing DB driver.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Parallel trials and processes share one file; wait for its lock instead of failing.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    heartbeat = max(1, min(HEARTBEAT_SECONDS, stale_after_s // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat,
            grace_period=stale_after_s,
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

    The sampler is seeded with the seed and the number of trials so far, so a resumed study does
    not replay the first session's random start; when other processes are running trials of the
    study at that moment, the process id is mixed in too, so parallel processes do not draw the
    same configurations. (Processes started at the very same moment on a new study can still
    collide on their first random draws; start them a few seconds apart.) `constant_liar` keeps
    parallel TPE suggestions away from configurations that are still running.

    Raises StudyMismatchError when the existing study was made for another model, objective,
    data set or search settings.
    """
    identity = {"search": search.identity(), "fingerprint": fingerprint, "feature_key": feature_key}
    entropy = [search.seed]
    try:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(
            deepcopy=False
        )
        entropy.append(len(trials))
        if any(t.state == TrialState.RUNNING for t in trials):
            entropy.append(os.getpid())
    except KeyError:
        pass  # a new study
    sampler_seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, constant_liar=True)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
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


def _process_tag() -> str:
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
    failed: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    failed += sorted(before - after)
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
    dead_sessions: set[str] = set()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if trial.number not in failed:
            continue
        if run_id := trial.user_attrs.get("mlflow_run_id"):
            _end_run_as(run_id, "KILLED")
            set_tags(run_id, {"stale": "true", "optuna_state": "FAIL"})
        if session := trial.user_attrs.get("mlflow_parent_run_id"):
            dead_sessions.add(session)
    # The session that ran a stale trial died with it; its study run would stay RUNNING forever.
    for session in dead_sessions:
        if _run_status(session) == "RUNNING":
            _end_run_as(session, "KILLED")
            set_tags(session, {"ended_by": "a later session found its process dead"})
    return sorted(failed)


def finished_trials(study: optuna.Study) -> int:
    """COMPLETE + PRUNED trials (what `--trials N` counts)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


# ----------------------------------------------------------------------------- MLflow lookups
# The trainer creates each trial's run itself; these find it by name under the study's run and
# end it as KILLED when the trial is pruned. They use the registry's client because
# `registry.tracking` has no search or status helpers yet.


def _find_child_run(experiment: str, parent_run_id: str, run_name: str) -> str | None:
    runs = client().search_runs(
        [experiment_id(experiment)],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.mlflow.runName = '{run_name}'"
        ),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].info.run_id if runs else None


def _end_run_as(run_id: str, status: Literal["KILLED", "FAILED", "FINISHED"]) -> None:
    client().set_terminated(run_id, status=status)


def _run_status(run_id: str) -> str | None:
    try:
        return client().get_run(run_id).info.status
    except mlflow.exceptions.MlflowException:
        return None  # deleted, or recorded in another tracking store


# ----------------------------------------------------------------------------- one trial


class _EpochReporter:
    """The trainer's epoch callback: score the model, report it to Optuna, log it to MLflow,
    and raise TrialPruned when the pruner says so."""

    def __init__(
        self,
        trial: optuna.Trial,
        settings: TrialSettings,
        scorer: EpochScorer,
        *,
        experiment: str,
        parent_run_id: str,
        metric_name: str,
        run_tags: dict[str, str],
    ) -> None:
        self.trial = trial
        self.settings = settings
        self.scorer = scorer
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.metric_name = metric_name
        self.run_tags = run_tags
        self.every = scorer.search.epochs_between_reports
        self.run_id: str | None = None
        self.last_epoch = -1

    def find_run(self, known_run_id: str | None = None) -> str | None:
        """The trial's MLflow run (looked up once by name under the study's run), tagged with
        the trial and given its Optuna parameters."""
        if self.run_id is None:
            self.run_id = known_run_id or _find_child_run(
                self.experiment, self.parent_run_id, self.settings.spec.run_name
            )
            if self.run_id is not None:
                self.trial.set_user_attr("mlflow_run_id", self.run_id)
                set_tags(self.run_id, self.run_tags)
                log_params(
                    self.run_id,
                    {
                        "optuna": self.trial.params,
                        "clustering": self.settings.clustering.model_dump(),
                    },
                )
        return self.run_id

    def __call__(self, epoch: int, record: dict[str, float], model: Any) -> None:
        self.find_run()
        self.last_epoch = epoch
        is_last = epoch + 1 == self.settings.spec.train.epochs
        if (epoch + 1) % self.every and not is_last:
            return
        score = self.scorer.score(model, self.settings.clustering)
        self.trial.report(score.value, step=epoch)
        if self.run_id is not None:
            log_metrics(self.run_id, {self.metric_name: score.value}, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {epoch + 1} with {self.metric_name}={score.value:.4f}"
            )


class TrialObjective:
    """`objective(trial) -> float` for `study.optimize`: train, score on held-out tracks, log.

    Thread-safe: each call has its own trial, spec and MLflow run; shared state is read-only
    apart from the list of trial numbers run by this process.
    """

    def __init__(
        self,
        *,
        workspace: Workspace,
        feature_key: str,
        fingerprint: str,
        search: SearchSettings,
        scorer: EpochScorer,
        n_clusters: int | None,
        study_name: str,
        experiment: str,
        parent_run_id: str,
        log: Callable[[str], None],
    ) -> None:
        self.workspace = workspace
        self.feature_key = feature_key
        self.fingerprint = fingerprint
        self.search = search
        self.scorer = scorer
        self.n_clusters = n_clusters
        self.study_name = study_name
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.log = log
        self.metric_name = f"validation_{search.objective}"
        self.trial_numbers: list[int] = []
        self._lock = threading.Lock()

    def features_label(self, number: int) -> str:
        return f"{TRIAL_RUN_PREFIX}{number}-{_short(self.study_name)}"

    def __call__(self, trial: optuna.Trial) -> float:
        with self._lock:
            self.trial_numbers.append(trial.number)
        trial.set_user_attr("process", _process_tag())
        trial.set_user_attr("mlflow_parent_run_id", self.parent_run_id)
        trial.set_user_attr("uses_labels", self.search.uses_labels)
        settings = suggest_trial_settings(
            trial,
            self.search,
            n_clusters=self.n_clusters,
            features_label=self.features_label(trial.number),
        )
        tags = {
            "stage": "tune-trial",
            "optuna_study": self.study_name,
            "optuna_trial": str(trial.number),
            "uses_labels": str(self.search.uses_labels).lower(),
            "objective": self.metric_name,
        }
        reporter = _EpochReporter(
            trial,
            settings,
            self.scorer,
            experiment=self.experiment,
            parent_run_id=self.parent_run_id,
            metric_name=self.metric_name,
            run_tags=tags,
        )
        started = time.perf_counter()
        try:
            output = train_and_encode(
                settings.spec,
                self.workspace,
                self.feature_key,
                self.fingerprint,
                experiment=self.experiment,
                parent_run_id=self.parent_run_id,
                register=False,
                on_epoch=reporter,
            )
            run_id = reporter.find_run(output.run_id) or output.run_id
            score = score_latents(
                read_latents(output.latents).mu,
                self.scorer.split,
                settings.clustering,
                self.search.objective,
                seed=self.search.seed,
                standardize=self.search.standardize_latents,
            )
        except optuna.TrialPruned:
            run_id = reporter.find_run()
            if run_id is not None:
                _end_run_as(run_id, "KILLED")
                set_tags(
                    run_id,
                    {
                        "optuna_state": "PRUNED",
                        "pruned": "true",
                        "pruned_at_epoch": reporter.last_epoch + 1,
                    },
                )
            self.log(
                f"trial {trial.number} pruned at epoch {reporter.last_epoch + 1} "
                f"({time.perf_counter() - started:.1f} s)"
            )
            raise
        except TRIAL_ERRORS as error:
            message = f"{type(error).__name__}: {error}"
            run_id = reporter.find_run()
            if run_id is not None:
                set_tags(run_id, {"optuna_state": "FAIL", "error": message[:5000]})
            self.log(f"trial {trial.number} failed: {message}")
            raise
        finally:
            # A trial's model lives on in its MLflow run; its folder would otherwise make the
            # evaluation flow compare every trial as a separate method.
            shutil.rmtree(
                self.workspace.root / "models" / settings.spec.run_name, ignore_errors=True
            )

        trial.set_user_attr("n_clusters_found", score.n_clusters_found)
        if score.reason:
            trial.set_user_attr("objective_note", score.reason)
        log_metrics(
            run_id,
            {
                f"final_{self.metric_name}": score.value,
                "n_clusters_found": score.n_clusters_found,
            },
        )
        set_tags(run_id, {"optuna_state": "COMPLETE"})
        self.log(
            f"trial {trial.number}: {self.metric_name}={score.value:.4f} "
            f"({settings.clustering.algorithm}, k={settings.clustering.n_clusters}; "
            f"{time.perf_counter() - started:.1f} s)"
        )
        return score.value


def _logger() -> Any:
    """The Prefect run logger inside a flow or task, a module logger when called directly."""
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        import logging

        return logging.getLogger(__name__)


def _short(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:6]


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


# ----------------------------------------------------------------------------- the study task


class StudySummary(BaseModel):
    """Where a study stands after this session."""

    study_name: str
    storage: str = Field(description="Storage URL, password hidden.")
    objective: str
    uses_labels: bool
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    trials_this_session: list[int]
    stale_trials_failed: list[int]
    seconds: float


def trials_table(study: optuna.Study) -> pl.DataFrame:
    """One row per trial: number, state, value, duration_s, last_epoch, params (JSON),
    mlflow_run_id, error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        steps = trial.intermediate_values
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "duration_s": duration,
                "last_epoch": (max(steps) + 1) if steps else None,
                "params": json.dumps(trial.params, sort_keys=True, default=str),
                "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
                "error": trial.user_attrs.get("error"),
            }
        )
    schema = {
        "number": pl.Int64,
        "state": pl.String,
        "value": pl.Float64,
        "duration_s": pl.Float64,
        "last_epoch": pl.Int64,
        "params": pl.String,
        "mlflow_run_id": pl.String,
        "error": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def log_study(run_id: str, study: optuna.Study, summary: StudySummary, out_dir: Path) -> None:
    """Best parameters, counts, the trials table and the plots, on the study's MLflow run."""
    from tasks.tuning_plots import (
        intermediate_values_plot,
        optimization_history_plot,
        parameter_importance_plot,
    )

    metric = f"validation_{summary.objective}"
    if summary.best_params:
        log_params(run_id, {"best": summary.best_params})
    log_metrics(
        run_id,
        {
            f"best_{metric}": summary.best_value if summary.best_value is not None else math.nan,
            "n_complete": summary.n_complete,
            "n_pruned": summary.n_pruned,
            "n_failed": summary.n_failed,
            "session_seconds": summary.seconds,
        },
    )
    set_tags(run_id, {"best_trial": summary.best_trial if summary.best_trial is not None else ""})
    log_table(run_id, trials_table(study), "trials.csv")
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    plots = [
        optimization_history_plot(trials, metric, out_dir / "optimization_history.png"),
        intermediate_values_plot(trials, metric, out_dir / "intermediate_values.png"),
    ]
    importance = parameter_importance_plot(study, out_dir / "parameter_importance.png")
    if isinstance(importance, Path):
        plots.append(importance)
    else:
        set_tags(run_id, {"parameter_importance": importance})
    for path in plots:
        log_artifact(run_id, path, "plots")


@task(cache_policy=NO_CACHE, task_run_name="study {study_name}")
def run_study(
    *,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    search: SearchSettings,
    storage_url: str,
    study_name: str,
    trials: int,
    jobs: int,
    timeout_s: float | None,
    pruner: PrunerKind,
    pruner_startup_trials: int,
    pruner_warmup_epochs: int,
    stale_after_s: int,
    max_consecutive_failures: int,
    experiment: str,
    parent_run_id: str,
) -> StudySummary:
    """Open (or resume) the study, fail stale trials, run trials until `trials` are finished,
    and log the study to its MLflow run `parent_run_id`.

    Raises StudyMismatchError (resuming with other settings), ValueError (too few tracks, or a
    label objective on data without genre labels), TuningError (repeated failing trials).
    """
    logger = _logger()
    started = time.perf_counter()
    split = HeldOutSplit.read(
        workspace, validation_fraction=search.validation_fraction, seed=search.seed
    )
    n_clusters = search.n_clusters
    if search.objective in EXTERNAL_OBJECTIVES:
        if split.n_genres < 2:
            raise ValueError(
                f"--objective {search.objective} compares clusters with genre labels, but the "
                f"usable tracks have {split.n_genres} distinct genre(s); use --objective "
                "silhouette"
            )
        n_clusters = n_clusters or split.n_genres
    if n_clusters is not None and n_clusters > len(split.train) - 1:
        raise ValueError(
            f"n_clusters={n_clusters} needs at least {n_clusters + 1} training tracks; "
            f"there are {len(split.train)}"
        )
    storage = make_storage(storage_url, stale_after_s=stale_after_s)
    study = open_study(
        storage,
        study_name,
        search,
        fingerprint=fingerprint,
        feature_key=feature_key,
        pruner=make_pruner(
            pruner,
            startup_trials=pruner_startup_trials,
            warmup_epochs=pruner_warmup_epochs,
            max_epochs=search.epochs,
        ),
    )
    stale = fail_stale_trials(study, older_than_s=stale_after_s)
    if stale:
        logger.warning("trials %s were left RUNNING by a dead process; marked FAIL", stale)
    sessions = [*study.user_attrs.get("mlflow_parent_runs", []), parent_run_id]
    study.set_user_attr("mlflow_parent_runs", sessions)
    logger.info(
        "study %s: %d finished trials of %d wanted; watch it with: optuna-dashboard %s",
        study_name,
        finished_trials(study),
        trials,
        display_url(storage_url),
    )
    objective = TrialObjective(
        workspace=workspace,
        feature_key=feature_key,
        fingerprint=fingerprint,
        search=search,
        scorer=EpochScorer(workspace, feature_key, split, search),
        n_clusters=n_clusters,
        study_name=study_name,
        experiment=experiment,
        parent_run_id=parent_run_id,
        log=logger.info,
    )
    # Trials in parallel threads share the cores; one torch pool per core is the most that helps.
    threads_before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own per-trial lines say more
    try:
        optimize_until(
            study,
            objective,
            target_finished=trials,
            jobs=jobs,
            timeout_s=timeout_s,
            max_consecutive_failures=max_consecutive_failures,
        )
    finally:
        torch.set_num_threads(threads_before)
    summary = summarize(study, storage_url, search, objective.trial_numbers, stale, started)
    log_study(parent_run_id, study, summary, workspace.root / "tuning" / _short(study_name))
    return summary


def summarize(
    study: optuna.Study,
    storage_url: str,
    search: SearchSettings,
    session_trials: list[int],
    stale: list[int],
    started: float,
) -> StudySummary:
    counts = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    completed = counts[TrialState.COMPLETE] > 0
    best = study.best_trial if completed else None
    return StudySummary(
        study_name=study.study_name,
        storage=display_url(storage_url),
        objective=search.objective,
        uses_labels=bool(study.user_attrs.get("uses_labels", search.uses_labels)),
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        best_params=dict(best.params) if best else {},
        n_complete=counts[TrialState.COMPLETE],
        n_pruned=counts[TrialState.PRUNED],
        n_failed=counts[TrialState.FAIL],
        n_running=counts[TrialState.RUNNING],
        trials_this_session=sorted(session_trials),
        stale_trials_failed=stale,
        seconds=time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------- the best model


class FinalModel(BaseModel):
    """The best configuration retrained, registered, and maybe promoted."""

    output: TrainOutput
    objective: str = Field(description="Name of the objective, e.g. validation_silhouette.")
    value: float
    clustering: ClusteringChoice
    champion_version: str | None
    champion_reason: str


@task(cache_policy=NO_CACHE, task_run_name="retrain best of {study_name}")
def retrain_best(
    *,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    search: SearchSettings,
    summary: StudySummary,
    study_name: str,
    epochs: int,
    experiment: str,
    parent_run_id: str,
) -> FinalModel:
    """Retrain the best trial's configuration for `epochs` epochs, register it
    (`vaemusic-<model>`), score it like the trials, and make it `vaemusic@champion` only if it
    beats the current champion on the same objective and data fingerprint.

    It keeps the trials' held-out split: the champion comparison needs the objective measured on
    tracks the model did not train on, exactly as the study measured it.

    Raises ValueError when the study has no completed trial.
    """
    if summary.best_trial is None:
        raise ValueError(f"study {study_name!r} has no completed trial to retrain")
    split = HeldOutSplit.read(
        workspace, validation_fraction=search.validation_fraction, seed=search.seed
    )
    n_clusters = search.n_clusters
    if search.objective in EXTERNAL_OBJECTIVES:
        n_clusters = n_clusters or split.n_genres
    label = f"tuned-{_short(study_name)}"
    settings = settings_from_params(
        summary.best_params, search, n_clusters=n_clusters, features_label=label, epochs=epochs
    )
    output = train_and_encode(
        settings.spec,
        workspace,
        feature_key,
        fingerprint,
        experiment=experiment,
        parent_run_id=parent_run_id,
        register=True,
    )
    latents = read_latents(output.latents)
    if latents.track_ids != split.track_ids:
        raise TuningError(
            f"the tracks of {output.latents} are not those of the study; re-run the ingest"
        )
    score = score_latents(
        latents.mu,
        split,
        settings.clustering,
        search.objective,
        seed=search.seed,
        standardize=search.standardize_latents,
    )
    metric = f"validation_{search.objective}"
    clustering_file = output.model_dir / "clustering.json"
    clustering_file.write_text(fitted_to_json(score.fitted))
    log_metrics(output.run_id, {metric: score.value, "n_clusters_found": score.n_clusters_found})
    log_params(output.run_id, {"clustering": settings.clustering.model_dump()})
    set_tags(
        output.run_id,
        {
            "stage": "tune-final",
            "optuna_study": study_name,
            "optuna_best_trial": summary.best_trial,
            "uses_labels": str(search.uses_labels).lower(),
            "objective": metric,
        },
    )
    log_artifact(output.run_id, clustering_file)

    # The champion is decided by the evaluation flow (same objective as the current champion,
    # complete package with reference latents and feature settings), not here.
    version = None
    reason = "left to the evaluation flow"
    return FinalModel(
        output=output,
        objective=metric,
        value=score.value,
        clustering=settings.clustering,
        champion_version=version,
        champion_reason=reason,
    )
