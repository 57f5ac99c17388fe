"""The champion: one registered model (`vaemusic@champion`) that `predict` uses for new tracks.

A champion version is a self-contained folder (see `tasks.evaluation.champion.CHAMPION_FILES`):
the model card and weights, the fitted clustering and the reference latents of the collection it
was fitted on. Each version records what it was chosen on as a `ChampionRecord` in its tags.

This module only stores and reads champions. Whether a candidate replaces the champion is decided
in `tasks.evaluation.champion.should_replace`, next to the metric directions it needs; the
registry knows no metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.models import (
    CHAMPION,
    content_digest,
    log_model_folder,
    register_model,
    set_alias,
    set_description,
    set_version_tags,
    version_by_alias,
)

CHAMPION_MODEL = "vaemusic"


class ChampionRecord(BaseModel):
    """What a champion was chosen on: one objective's value on one data set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective: str = Field(description="The ranking metric, e.g. 'nmi' or 'davies_bouldin'.")
    value: float = Field(description="The champion's value of the objective (finite).")
    fingerprint: str = Field(description="Fingerprint of the data set it was measured on.")

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"a champion's objective value must be finite, got {value}")
        return value

    def as_tags(self) -> dict[str, str]:
        # repr() round-trips a float exactly: the same model measured again compares as a tie
        # instead of looking better or worse by a rounding digit.
        return {
            "objective": self.objective,
            "objective_value": repr(self.value),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> ChampionRecord | None:
        """The record in a model version's tags; None when the tags hold none (a version
        registered by hand, or one whose value is unreadable)."""
        try:
            return cls(
                objective=tags["objective"],
                value=float(tags["objective_value"]),
                fingerprint=tags.get("fingerprint", ""),
            )
        except (KeyError, ValueError):
            return None


def current_champion(name: str = CHAMPION_MODEL) -> ChampionRecord | None:
    """The record of the version behind `name@champion`; None when there is no champion or it
    records no objective."""
    version = version_by_alias(name, CHAMPION)
    if version is None:
        return None
    return ChampionRecord.from_tags(version.tags or {})


def promote(
    *,
    run_id: str,
    files: list[Path],
    record: ChampionRecord,
    tags: Mapping[str, str] | None = None,
    name: str = CHAMPION_MODEL,
) -> str:
    """Log `files` as the folder `champion` of run `run_id`, register them as a version of
    `name`, tag it with `record` (and `tags`), describe it, and point `name@champion` at it.

    A package whose content (`registry.models.content_digest`) is already a version of `name`
    does not add a version: that version gets the new record and description and the alias.

    Returns:
        The version number (new, or the existing one with the same content).

    Raises:
        FileNotFoundError: one of `files` does not exist (nothing is registered then).
    """
    uri = log_model_folder(run_id, files, name="champion")
    description = describe(record, tags or {})
    version = register_model(uri, name, digest=content_digest(files), description=description)
    # source_run: the evaluation that chose it last (the version's own run_id is the first).
    set_version_tags(name, version, {**record.as_tags(), "source_run": run_id, **(tags or {})})
    set_description(name, version, description)
    set_alias(name, CHAMPION, version)
    return version


def describe(record: ChampionRecord, tags: Mapping[str, str]) -> str:
    """A version's description in one line: what it is and what it was chosen on
    (`mlp_vae [default] + kmeans; nmi = 0.4123 on data 3f2a9c1d0b7e`)."""
    what = " ".join(
        part
        for part in (
            tags.get("method", ""),
            f"[{tags['features']}]" if tags.get("features") else "",
            f"+ {tags['algorithm']}" if tags.get("algorithm") else "",
        )
        if part
    )
    chosen_on = f"{record.objective} = {record.value:.4f} on data {record.fingerprint[:12]}"
    return f"{what}; {chosen_on}" if what else chosen_on
