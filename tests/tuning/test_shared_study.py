"""Two `tune` processes at once on one Optuna study in PostgreSQL, as on two machines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tasks.demo import generate_demo_dataset
from tasks.tuning.study import study_sessions
from tests.postgres_server import Postgres

pytestmark = pytest.mark.postgres

TRIALS = 6
TUNE_TIMEOUT_S = 420


def test_two_tune_processes_share_one_postgres_study(
    postgres: Postgres, tmp_path: Path, repo_root: Path
) -> None:
    """Each process has its own work dir, Prefect home and MLflow store (as on its own machine)
    and the same collection and storage URL: both open the same study (its name comes from the
    model and the data fingerprint), both sessions are recorded on it, and together they leave
    it with the finished trials asked for, every trial number once, none failed."""
    data = generate_demo_dataset(tmp_path / "data", tracks=16, seed=0, duration_s=4.0).root
    storage = postgres.url(postgres.new_database("shared_study"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    processes = []
    for name in ("a", "b"):
        home = tmp_path / name
        (home / "prefect").mkdir(parents=True)
        command = [
            sys.executable, "-m", "flows", "tune", "mlp_vae", str(data),
            "--workdir", str(home / "work"), "--storage", storage, "--trials", str(TRIALS),
            "--epochs", "2", "--final-epochs", "2", "--pruner", "none", "--n-clusters", "3",
            "--no-retrain-best", "--no-evaluate", "--n-mels", "32", "--crop-frames", "32",
            "--crop-hop-frames", "32", "--search-device", "cpu",
        ]  # fmt: skip
        env = base | {
            "PREFECT_HOME": str(home / "prefect"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        }
        log = (home / "tune.log").open("w")
        processes.append(
            (subprocess.Popen(command, cwd=repo_root, env=env, stdout=log, stderr=log), home)
        )
    for process, home in processes:
        code = process.wait(timeout=TUNE_TIMEOUT_S)
        assert code == 0, (home / "tune.log").read_text()[-3000:]

    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(study_sessions(study)) == 2
    numbers = [trial.number for trial in study.trials]
    assert len(numbers) == len(set(numbers))
    states = [trial.state for trial in study.trials]
    finished = sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states)
    # Each process stops once the study holds TRIALS finished trials; one that started a trial
    # just before the other's last one finished completes it too.
    assert TRIALS <= finished <= TRIALS + 1
    assert TrialState.FAIL not in states
    print("trials per process:", Counter(trial.user_attrs["process"] for trial in study.trials))
