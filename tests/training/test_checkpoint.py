"""A trained model on disk: card + safetensors weights; loading never unpickles anything."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from models.zoo import build_model
from tasks.training.checkpoint import (
    WEIGHTS_FILE,
    CheckpointError,
    load_latent_encoder,
    load_trained_model,
    save_trained_model,
)
from tasks.training.model_card import ModelCard

INPUT_SHAPE = (12,)
CLASSES = ("en", "fr", "none")


def saved_cvae(folder: Path) -> tuple[torch.nn.Module, ModelCard]:
    torch.manual_seed(0)
    model = build_model("cvae", input_shape=INPUT_SHAPE, n_conditions=len(CLASSES)).eval()
    model.set_input_normalization(torch.linspace(-1, 1, 12), torch.linspace(0.5, 2, 12))
    card = ModelCard(
        model="cvae",
        config=model.config.model_dump(mode="json"),
        input_shape=INPUT_SHAPE,
        condition_classes=CLASSES,
        default_condition=2,
        feature_key="key",
        input_kind="vector",
        method="cvae",
    )
    save_trained_model(model, card, folder)
    return model, card


class _Payload:
    """Unpickling this object writes a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_a_saved_model_comes_back_with_the_same_weights_and_card(tmp_path: Path) -> None:
    model, card = saved_cvae(tmp_path)
    x = torch.randn(5, 12)

    torch.manual_seed(1)  # other initial weights: everything must come from the files
    rebuilt, read_card = load_trained_model(tmp_path)

    assert read_card == card
    assert not rebuilt.training
    torch.testing.assert_close(
        rebuilt.embed({"x": x, "condition": torch.ones(5, dtype=torch.long)}),
        model.embed({"x": x, "condition": torch.ones(5, dtype=torch.long)}),
    )
    encoder, _ = load_latent_encoder(tmp_path)
    assert encoder.default_condition == 2


def test_loading_a_model_folder_never_unpickles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = saved_cvae(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a model folder was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)

    loaded, _ = load_trained_model(tmp_path)
    # the very weights come back, read without unpickling
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)


def test_a_pickle_in_place_of_the_weights_is_refused_without_running_it(tmp_path: Path) -> None:
    saved_cvae(tmp_path)
    marker = tmp_path / "marker.txt"
    (tmp_path / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(marker)))

    with pytest.raises(CheckpointError, match="not a loadable safetensors file"):
        load_trained_model(tmp_path)

    assert not marker.exists()


def test_a_folder_of_the_pickle_era_asks_for_retraining(tmp_path: Path) -> None:
    saved_cvae(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "model.pt")

    with pytest.raises(CheckpointError, match=r"holds a pickled model \(model.pt\).*retrain"):
        load_trained_model(tmp_path)


@pytest.mark.parametrize(
    "change", [{"input_shape": (20,)}, {"model": "mlp_vae", "condition_classes": ()}]
)
def test_weights_of_another_architecture_are_refused(tmp_path: Path, change: dict) -> None:
    _, card = saved_cvae(tmp_path)
    card.model_copy(update=change).write(tmp_path)

    with pytest.raises(CheckpointError, match="does not fit"):
        load_trained_model(tmp_path)


def test_a_saved_model_describes_its_serving_signature_without_a_loadable_flavour(
    tmp_path: Path,
) -> None:
    # Given a conditional model saved twice (the second time after other seeds ran) ...
    from mlflow.models import Model

    _, card = saved_cvae(tmp_path / "a")
    _, _ = saved_cvae(tmp_path / "b")
    # ... MLflow reads the encoder's signature and input example from the folder ...
    described = Model.load(str(tmp_path / "a"))
    inputs = {spec.name: spec for spec in described.signature.inputs.inputs}
    assert inputs["x"].shape == (-1, *INPUT_SHAPE)
    assert str(inputs["condition"].type) == "int64"
    assert described.signature.outputs.inputs[0].shape[0] == -1
    example = described.load_input_example(str(tmp_path / "a"))
    assert example["condition"] == [card.default_condition]
    # ... but it has no flavour an MLflow loader would unpickle, and the file is the same bytes
    # for the same model (so registering it again is recognised as the same version).
    assert described.flavors == {}
    assert (tmp_path / "a" / "MLmodel").read_bytes() == (tmp_path / "b" / "MLmodel").read_bytes()
