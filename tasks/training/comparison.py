"""The comparison the pipeline trains: every method of the zoo, its variants and the training
settings of a profile (`quick`: minutes on a 2-core CPU; `full`: what a paper would use), on the
hand-crafted descriptors and, for the VAE family, on the pretrained network's embeddings."""

from __future__ import annotations

from typing import Literal

from models.multimodal_vae import FUSIONS
from models.zoo import model_class
from tasks.audio.pretrained import PretrainedConfig
from tasks.evaluation.plots import MAP_METHODS, MapMethod
from tasks.training.representation import ModelSpec
from tasks.training.trainer import TrainConfig

Profile = Literal["quick", "full"]
BETAS = (0.5, 1.0, 2.0, 4.0)
# 3 s patches per track the quick profile runs through the pretrained network (evenly spread);
# the full profile takes every patch.
QUICK_MAX_PATCHES = (
    3  # 0.125 CPU-s per clip here; NMI as 4 patches within the spread (bench/musicnn.py)
)
# Crops an epoch of the quick profile sees at most. Its epochs were chosen on the 120-track demo
# (about 1,000 training crops); past this cap every track gives an equal share, drawn anew each
# epoch, so a model's training costs the same from a few hundred tracks on. At 1,000 demo tracks
# (3 of 10 crops per track and epoch) the MLP-family loops took a quarter of the time with NMI
# within a seed's spread (bench/README.md); the full profile sees every crop.
QUICK_MAX_CROPS_PER_EPOCH = 2560
# The fusion of the multimodal rows on pretrained inputs: the best on descriptors (late fusion
# led the demo comparison, audio+lyrics and its audio-only control alike).
PRETRAINED_FUSION = "late"


def pretrained_config(profile: Profile) -> PretrainedConfig:
    """The pretrained network's settings of a profile: a cap on patches per track in `quick`."""
    return PretrainedConfig(max_patches=QUICK_MAX_PATCHES if profile == "quick" else None)


def profile_maps(profile: Profile, chosen: list[MapMethod] | None = None) -> list[MapMethod]:
    """The 2-D maps the evaluation draws per representation: those `chosen`, else the profile's:
    UMAP alone in `quick` (t-SNE of 1,000 tracks took 1.7 s per representation, a fifth of the
    figures' time), every method in `full`."""
    if chosen is not None:
        return list(chosen)
    return ["umap"] if profile == "quick" else list(MAP_METHODS)


def pretrained_specs(train: TrainConfig, n_clusters: int | None) -> list[ModelSpec]:
    """The VAE family on the pretrained embeddings (one row per 3 s patch): MLP-VAE, VaDE, the
    multimodal VAE with lyrics and its audio-only control."""
    return [
        ModelSpec(model="mlp_vae", train=train, inputs="musicnn", features_label="musicnn"),
        ModelSpec(
            model="vade",
            train=train,
            inputs="musicnn",
            overrides={"n_components": n_clusters} if n_clusters else {},
        ),
        ModelSpec(
            model="multimodal_vae",
            train=train,
            inputs="musicnn",
            overrides={"fusion": PRETRAINED_FUSION},
            features_label=f"musicnn, fusion={PRETRAINED_FUSION}, audio+lyrics",
        ),
        ModelSpec(
            model="multimodal_vae",
            train=train,
            inputs="musicnn",
            overrides={"fusion": PRETRAINED_FUSION},
            audio_only=True,
            features_label=f"musicnn, fusion={PRETRAINED_FUSION}, audio_only",
        ),
    ]


def model_specs(
    profile: Profile,
    max_epochs: int | None = None,
    n_clusters: int | None = None,
    *,
    with_lyrics: bool = True,
) -> list[ModelSpec]:
    """Every method of the comparison with the training settings of the profile.

    Args:
        max_epochs: cap on every model's epochs (smoke tests, quick looks).
        n_clusters: clusters asked of every method (VaDE's mixture gets as many components).
        with_lyrics: False for an instrumental collection: the lyrics models have nothing to fuse
            (and cannot be built when the lyrics encoder never saw text); the audio models run.
    """
    quick = profile == "quick"
    seeds = (0,) if quick else (0, 1, 2)
    cap = QUICK_MAX_CROPS_PER_EPOCH if quick else None
    mlp = dict(epochs=60 if quick else 200, patience=10 if quick else 20, max_crops_per_epoch=cap)
    conv = dict(
        epochs=8 if quick else 60,
        patience=4 if quick else 12,
        batch_size=32,
        max_crops_per_epoch=cap,
    )
    conv_overrides = {"channels": [16, 32, 64, 128]} if quick else {}
    if max_epochs is not None:
        mlp["epochs"] = min(mlp["epochs"], max_epochs)
        conv["epochs"] = min(conv["epochs"], max_epochs)
    specs = []
    for seed in seeds:
        train = TrainConfig(seed=seed, **mlp)
        specs += [
            # The longest training first: trainings side by side (training lanes) then end
            # together instead of the conv VAE running alone at the end.
            ModelSpec(
                model="conv_vae",
                train=TrainConfig(seed=seed, **conv),
                overrides=conv_overrides,
                features_label="log-mel crops",
            ),
            ModelSpec(model="ae", train=train),
            ModelSpec(model="mlp_vae", train=train, features_label="audio_only"),
            *[
                ModelSpec(
                    model="beta_vae",
                    train=train,
                    overrides={"beta": beta},
                    features_label=f"beta={beta:g}",
                )
                for beta in BETAS
            ],
            ModelSpec(model="cvae", train=train, features_label="condition=language"),
            # Conditioned on the genre labels: reported, never ranked with unsupervised rows.
            ModelSpec(
                model="cvae", train=train, condition="genre", features_label="condition=genre"
            ),
            # VaDE's mixture gets as many components as clusters are asked of every method.
            ModelSpec(
                model="vade",
                train=train,
                overrides={"n_components": n_clusters} if n_clusters else {},
            ),
            *[
                ModelSpec(
                    model="multimodal_vae",
                    train=train,
                    overrides={"fusion": fusion},
                    features_label=f"fusion={fusion}, audio+lyrics",
                )
                for fusion in FUSIONS
            ],
            ModelSpec(
                model="multimodal_vae",
                train=train,
                overrides={"fusion": "late"},
                audio_only=True,
                features_label="fusion=late, audio_only",
            ),
            *pretrained_specs(train, n_clusters),
        ]
    if not with_lyrics:
        specs = [spec for spec in specs if not model_class(spec.model).uses_lyrics]
    return specs
