"""The objective a trial is scored on, measured on held-out tracks, and one trial run end to end.

A trial trains with `tasks.training.representation.train_representation` (a child MLflow run of the
session's run, never registered) and is scored on held-out tracks: the clustering is fitted on
the latents of the training tracks, the validation tracks are assigned to it with
`tasks.evaluation.clustering.assign`, and the objective is measured on the validation tracks only:

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
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from models.zoo import model_class
from registry.runs import end_run, find_child_run
from registry.tracking import log_metrics, log_params, set_tags
from tasks.audio.features import resolve_device
from tasks.audio.ingest import usable_tracks
from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import assign
from tasks.evaluation.clustering import cluster
from tasks.evaluation.metrics import external_metrics, internal_metrics
from tasks.training.data import CropArrays, CropBatches, gather_crops, split_tracks
from tasks.training.representation import (
    ModelSpec,
    read_latents,
    side_information,
    train_representation,
)
from tasks.training.trainer import encode_tracks
from tasks.tuning.errors import TuningError
from tasks.tuning.space import (
    EXTERNAL_OBJECTIVES,
    ClusteringChoice,
    Objective,
    SearchSettings,
    TrialSettings,
    suggest_trial_settings,
)
from tasks.tuning.storage import StudyTarget, process_tag, study_tag

# Value given to a clustering that separates nothing on the validation tracks: the worst the
# objective can take, so such a trial ranks last without making the study's numbers NaN.
WORST_VALUE: dict[str, float] = {"silhouette": -1.0, "nmi": 0.0, "ari": -1.0}
# Exceptions that end one trial as FAIL but let the study go on: a diverging loss
# (NonFiniteLossError is a RuntimeError), a configuration the data cannot support (ValueError,
# e.g. ClusteringError). Anything else (a bug, Ctrl-C) stops the study.
TRIAL_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError)
TRIAL_RUN_PREFIX = "trial"


@dataclass(frozen=True)
class ObjectiveScore:
    """A clustering's score on the validation tracks.

    value: the objective (WORST_VALUE when undefined); reason: why it was undefined, or "".
    n_clusters_found: clusters among the validation tracks.
    fitted: the fitted clustering (`tasks.evaluation.clustering.fitted_to_json` writes it).
    """

    value: float
    reason: str
    n_clusters_found: int
    fitted: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class HeldOutSplit:
    """The tracks of a work dir in the trainer's order and the trainer's held-out split.

    track_ids / shas: ok tracks sorted by id (as `train_representation` orders them).
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
        """Raises TuningError when there are too few tracks to hold any out."""
        tracks = usable_tracks(workspace)
        train, validation = split_tracks(tracks.height, validation_fraction, seed)
        if len(validation) < 3:
            raise TuningError(
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

    def fixed_n_clusters(self, search: SearchSettings) -> int | None:
        """The cluster count every trial uses: `search.n_clusters`, else the number of genres
        for a label objective; None when it is tuned.

        Raises TuningError when a label objective meets fewer than 2 genres, or when the count
        needs more training tracks than there are.
        """
        n_clusters = search.n_clusters
        if search.objective in EXTERNAL_OBJECTIVES:
            if self.n_genres < 2:
                raise TuningError(
                    f"--objective {search.objective} compares clusters with genre labels, but "
                    f"the usable tracks have {self.n_genres} distinct genre(s); use --objective "
                    "silhouette"
                )
            n_clusters = n_clusters or self.n_genres
        if n_clusters is not None and n_clusters > len(self.train) - 1:
            raise TuningError(
                f"n_clusters={n_clusters} needs at least {n_clusters + 1} training tracks; "
                f"there are {len(self.train)}"
            )
        return n_clusters


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


def score_for_search(
    mu: np.ndarray, split: HeldOutSplit, clustering: ClusteringChoice, search: SearchSettings
) -> ObjectiveScore:
    """`score_latents` with the study's objective, seed and standardisation."""
    return score_latents(
        mu,
        split,
        clustering,
        search.objective,
        seed=search.seed,
        standardize=search.standardize_latents,
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
        return score_for_search(latents.mu, self.split, clustering, self.search)


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
        run_tags: dict[str, str],
    ) -> None:
        self.trial = trial
        self.settings = settings
        self.scorer = scorer
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.metric_name = scorer.search.metric_name
        self.run_tags = run_tags
        self.every = scorer.search.epochs_between_reports
        self.run_id: str | None = None
        self.last_epoch = -1

    def find_run(self, known_run_id: str | None = None) -> str | None:
        """The trial's MLflow run (looked up once by name under the session's run), tagged with
        the trial and given its Optuna parameters."""
        if self.run_id is None:
            self.run_id = known_run_id or find_child_run(
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
        target: StudyTarget,
        scorer: EpochScorer,
        n_clusters: int | None,
        experiment: str,
        parent_run_id: str,
        log: Callable[[str], None],
    ) -> None:
        self.target = target
        self.scorer = scorer
        self.search = scorer.search
        self.n_clusters = n_clusters
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.log = log
        self.trial_numbers: list[int] = []
        self._lock = threading.Lock()

    def features_label(self, number: int) -> str:
        return f"{TRIAL_RUN_PREFIX}{number}-{study_tag(self.target.name)}"

    def __call__(self, trial: optuna.Trial) -> float:
        with self._lock:
            self.trial_numbers.append(trial.number)
        trial.set_user_attr("process", process_tag())
        trial.set_user_attr("mlflow_parent_run_id", self.parent_run_id)
        trial.set_user_attr("uses_labels", self.search.uses_labels)
        settings = suggest_trial_settings(
            trial,
            self.search,
            n_clusters=self.n_clusters,
            features_label=self.features_label(trial.number),
        )
        reporter = _EpochReporter(
            trial,
            settings,
            self.scorer,
            experiment=self.experiment,
            parent_run_id=self.parent_run_id,
            run_tags=self._run_tags(trial.number),
        )
        started = time.perf_counter()
        try:
            run_id, score = self._train_and_score(settings, reporter)
        except optuna.TrialPruned:
            self._record_pruned(trial.number, reporter, started)
            raise
        except TRIAL_ERRORS as error:
            self._record_failure(trial.number, reporter, error)
            raise
        finally:
            # A trial's model lives on in its MLflow run; its folder would otherwise make the
            # evaluation flow compare every trial as a separate method.
            shutil.rmtree(
                self.target.workspace.model_dir(settings.spec.run_name), ignore_errors=True
            )
        self._record_complete(trial, run_id, score, settings.clustering, started)
        return score.value

    def _run_tags(self, number: int) -> dict[str, str]:
        return {
            "stage": "tune-trial",
            "optuna_study": self.target.name,
            "optuna_trial": str(number),
            "uses_labels": str(self.search.uses_labels).lower(),
            "objective": self.search.metric_name,
        }

    def _train_and_score(
        self, settings: TrialSettings, reporter: _EpochReporter
    ) -> tuple[str, ObjectiveScore]:
        """Train with `reporter` as the epoch callback; the trial's run id and final score."""
        output = train_representation.fn(
            settings.spec,
            self.target.workspace,
            self.target.feature_key,
            self.target.fingerprint,
            experiment=self.experiment,
            parent_run_id=self.parent_run_id,
            register=False,
            on_epoch=reporter,
            report_progress=False,  # a trial's epochs are reported to Optuna, not logged
        )
        run_id = reporter.find_run(output.run_id) or output.run_id
        mu = read_latents(output.latents).mu
        return run_id, score_for_search(mu, self.scorer.split, settings.clustering, self.search)

    def _record_pruned(self, number: int, reporter: _EpochReporter, started: float) -> None:
        run_id = reporter.find_run()
        if run_id is not None:
            end_run(run_id, "KILLED")
            set_tags(
                run_id,
                {
                    "optuna_state": "PRUNED",
                    "pruned": "true",
                    "pruned_at_epoch": reporter.last_epoch + 1,
                },
            )
        self.log(
            f"trial {number} pruned at epoch {reporter.last_epoch + 1} "
            f"({time.perf_counter() - started:.1f} s)"
        )

    def _record_failure(self, number: int, reporter: _EpochReporter, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        run_id = reporter.find_run()
        if run_id is not None:
            set_tags(run_id, {"optuna_state": "FAIL", "error": message[:5000]})
        self.log(f"trial {number} failed: {message}")

    def _record_complete(
        self,
        trial: optuna.Trial,
        run_id: str,
        score: ObjectiveScore,
        clustering: ClusteringChoice,
        started: float,
    ) -> None:
        metric = self.search.metric_name
        trial.set_user_attr("n_clusters_found", score.n_clusters_found)
        if score.reason:
            trial.set_user_attr("objective_note", score.reason)
        log_metrics(
            run_id, {f"final_{metric}": score.value, "n_clusters_found": score.n_clusters_found}
        )
        set_tags(run_id, {"optuna_state": "COMPLETE"})
        self.log(
            f"trial {trial.number}: {metric}={score.value:.4f} "
            f"({clustering.algorithm}, k={clustering.n_clusters}; "
            f"{time.perf_counter() - started:.1f} s)"
        )
