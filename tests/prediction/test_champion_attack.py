"""The attack of issue 15 on `predict --model`: a model in the tracking store whose files are a
pickle that runs code when loaded. Logged to a real MLflow store (SQLite + artifact folder) in the
old format (MLflow's pytorch flavour: `MLmodel`, `data/model.pth`, plus the other pickle names),
registered as a version, then predicted with through the flow by `runs:/` and `models:/` URIs.
Nothing may be unpickled, and the user gets one line saying what to do."""

from __future__ import annotations

import pickle
import wave
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from registry.models import register_model
from tasks.prediction.champion import PredictionError


class _WritesMarker:
    """Unpickling this writes `marker`: any code path that unpickles it leaves the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled: code from the model file ran"))


def _pickle_era_model_folder(folder: Path, marker: Path) -> Path:
    """What `mlflow.pytorch.log_model(serialization_format="pickle")` left, with the payload in
    every file a loader might open."""
    payload = pickle.dumps(_WritesMarker(marker))
    (folder / "data").mkdir(parents=True)
    for name in ("data/model.pth", "model.pth", "python_model.pkl"):
        (folder / name).write_bytes(payload)
    flavours = {
        "pytorch": {"model_data": "data", "serialization_format": "pickle"},
        "python_function": {"loader_module": "mlflow.pytorch", "data": "data"},
    }
    (folder / "MLmodel").write_text(yaml.safe_dump({"artifact_path": "model", "flavors": flavours}))
    return folder


def _one_song(folder: Path) -> Path:
    folder.mkdir(parents=True)
    song = folder / "song.wav"
    with wave.open(str(song), "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(22050)
        sink.writeframes(b"\x01\x00" * 22050)
    return song


def test_a_pickled_model_in_the_tracking_store_is_refused_by_predict_unread(
    prefect_api, tmp_path: Path
) -> None:
    from flows.predict import PredictConfig, predict_flow

    # Given a live payload (proven live: unpickling a copy of it writes its marker) ...
    proof = tmp_path / "proof.txt"
    pickle.loads(pickle.dumps(_WritesMarker(proof)))  # the attack's own payload
    assert proof.exists()
    marker = tmp_path / "marker.txt"
    # ... logged as a run's model and registered as a version in the real tracking store,
    client = MlflowClient()
    experiment_id = client.create_experiment(f"attack-{tmp_path.name}")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_artifacts(run_id, str(_pickle_era_model_folder(tmp_path / "model", marker)), "model")
    client.set_terminated(run_id)
    name = f"attack-{tmp_path.name}"
    version = register_model(f"runs:/{run_id}/model", name)
    song = _one_song(tmp_path / "new")

    for model in (f"runs:/{run_id}/model", f"models:/{name}/{version}"):
        # When predict is given it ...
        with pytest.raises(PredictionError) as refused:
            predict_flow(
                PredictConfig(
                    data=song,
                    workdir=tmp_path / "work",
                    predict_dir=tmp_path / "predict",
                    model=model,
                )
            )
        # ... it says in one line what the model is and what to do, and ran none of it.
        message = str(refused.value)
        assert "\n" not in message
        assert f"model {model} holds a pickled model" in message
        assert "data/model.pth" in message
        assert "MLmodel (flavour python_function, pytorch)" in message
        assert "only safetensors weights with a model card" in message
        assert "retrain" in message
        assert not marker.exists()
