"""A model version is registered once per content, with a description."""

from __future__ import annotations

import json
from pathlib import Path

from registry.models import content_digest, log_model_folder, register_model
from registry.tracking import client, tracked_run


def _model_folder(folder: Path, *, run_id: str, weights: bytes) -> list[Path]:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "model.json").write_text(json.dumps({"model": "mlp_vae", "run_id": run_id}))
    return [folder / "model.safetensors", folder / "model.json"]


def test_the_run_that_made_a_model_is_not_part_of_its_content(tmp_path: Path) -> None:
    first = _model_folder(tmp_path / "a", run_id="run-1", weights=b"w")
    retrained = _model_folder(tmp_path / "b", run_id="run-2", weights=b"w")
    other = _model_folder(tmp_path / "c", run_id="run-1", weights=b"x")
    assert content_digest(first) == content_digest(retrained)
    assert content_digest(first) != content_digest(other)


def test_the_same_model_registered_again_does_not_add_a_version(tmp_path: Path) -> None:
    # given a model registered once
    name = "test-dedup-model"
    versions = []
    for index, weights in enumerate((b"same", b"same", b"changed")):
        with tracked_run("training", f"train {index}") as run_id:
            files = _model_folder(tmp_path / str(index), run_id=run_id, weights=weights)
            uri = log_model_folder(run_id, files)
            # when a re-run registers the same content, then another content
            versions.append(
                register_model(
                    uri, name, digest=content_digest(files), description=f"data abc; run {index}"
                )
            )
    # then the re-run gets the first version back, and only a change adds one
    assert versions[0] == versions[1]
    assert int(versions[2]) == int(versions[0]) + 1
    assert client().get_model_version(name, versions[0]).description == "data abc; run 0"


def test_without_a_digest_every_registration_is_a_new_version(tmp_path: Path) -> None:
    with tracked_run("training", "no digest") as run_id:
        uri = log_model_folder(run_id, _model_folder(tmp_path / "m", run_id=run_id, weights=b"w"))
    first = register_model(uri, "test-no-digest")
    assert int(register_model(uri, "test-no-digest")) == int(first) + 1


def test_a_registered_version_shows_its_signature_and_input_example(tmp_path: Path) -> None:
    # Given a trained model saved the way training saves it, logged and registered ...
    from mlflow.models import Model

    from models.zoo import build_model
    from tasks.training.checkpoint import save_trained_model
    from tests.prediction.cards import card

    model = build_model("mlp_vae", input_shape=(12,)).eval()
    files = save_trained_model(
        model, card("mlp_vae", config=model.config.model_dump(mode="json")), tmp_path
    )
    with tracked_run("training", "signature") as run_id:
        version = register_model(log_model_folder(run_id, files), "test-signature-model")

    # ... MLflow finds the signature (what its UI shows on the version's page) and the example.
    described = Model.load(f"models:/test-signature-model/{version}")
    assert [spec.name for spec in described.signature.inputs.inputs] == ["x"]
    assert described.signature.inputs.inputs[0].shape == (-1, 12)
    assert described.signature.outputs.inputs[0].shape == (-1, model.latent_dim)
    assert described.saved_input_example_info["artifact_path"] == "input_example.json"
    assert described.flavors == {}
