"""What one demo track draws from its genre's style before a note is played.

Tempo, swing, key, mode, chord progression, drum grooves (with a few steps flipped), and its own
copy of each instrument and of the drum kit with every timbre parameter moved a little. Now and
then one part (tempo, drums, chords, bass or melody) is borrowed from another genre, so genres
overlap the way real ones do and clustering by audio is learnable but not trivial.

Every draw comes from the track's generator in a fixed order: reordering them changes the audio
of every seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TypeVar

import numpy as np

from tasks.demo.instruments import DrumKit, Instrument
from tasks.demo.seeding import pick
from tasks.demo.styles import GENRES, MODES, STYLES, GenreStyle

BORROW_PROBABILITY = 0.3
"""Chance that a track takes one part of its sound from another genre."""

# How far each timbre parameter moves per track (see `_jitter`), in the order of the draws.
INSTRUMENT_SPREADS: dict[str, float] = {
    "rolloff": 0.25,
    "formant_hz": 0.3,
    "attack_s": 0.4,
    "decay_s": 0.4,
    "sustain": 0.3,
    "vibrato_cents": 0.5,
    "vibrato_hz": 0.2,
    "fm_index": 0.4,
    "drive": 0.5,
}
_KIT_SPREADS: dict[str, float] = {
    "kick_start_hz": 0.2,
    "kick_end_hz": 0.15,
    "kick_decay_s": 0.3,
    "kick_click": 0.5,
    "snare_tone_hz": 0.15,
    "snare_decay_s": 0.3,
    "snare_band_hz": 0.3,
    "hat_decay_s": 0.4,
    "hat_cutoff_hz": 0.2,
    "tom_hz": 0.2,
    "tom_decay_s": 0.3,
}
# Upper bounds after the move: sustain is a fraction of the peak level, and the hat cutoff stays
# under the filters' ceiling at 22,050 Hz (0.95 of Nyquist, about 10.5 kHz).
_CEILINGS: dict[str, float] = {"sustain": 1.0, "hat_cutoff_hz": 9500.0}

_Preset = TypeVar("_Preset", Instrument, DrumKit)


@dataclasses.dataclass(frozen=True)
class TrackSound:
    """The choices one track made from its genre's style (and maybe one borrowed part).

    `mode` is the scale as semitones above the key; `progression` one scale degree per bar;
    drum patterns, `chord_rhythm` and `bass_pattern` have one character per grid step of a bar.
    """

    bpm: float
    steps_per_beat: int
    swing: float
    key_pitch_class: int
    mode: tuple[int, ...]
    progression: tuple[int, ...]
    drums: dict[str, str]
    kit: DrumKit
    chord_instrument: Instrument
    chord_rhythm: str
    chord_style: GenreStyle
    bass_pattern: str
    bass_style: GenreStyle
    melody_style: GenreStyle

    @property
    def steps_per_bar(self) -> int:
        return 4 * self.steps_per_beat


def choose_sound(genre: str, rng: np.random.Generator) -> TrackSound:
    """Draw a track's tempo, harmony, grooves and timbres from the style of `genre`."""
    style = STYLES[genre]
    borrowed = _borrowed_parts(genre, rng)
    tempo_style = STYLES[borrowed["tempo"]]
    drum_style = STYLES[borrowed["drums"]]
    chord_style = STYLES[borrowed["chords"]]
    bass_style = STYLES[borrowed["bass"]]
    steps_per_bar = 4 * style.steps_per_beat
    drums = _choose_drums(drum_style, steps_per_bar, rng)
    rhythm = pick(rng, chord_style.chord_rhythms)
    return TrackSound(
        bpm=float(rng.uniform(*tempo_style.tempo_bpm)),
        steps_per_beat=style.steps_per_beat,
        swing=float(rng.uniform(*style.swing)),
        key_pitch_class=int(rng.integers(0, 12)),
        mode=MODES[pick(rng, style.modes)],
        progression=pick(rng, style.progressions),
        drums=drums,
        kit=vary(drum_style.kit, _KIT_SPREADS, rng),
        chord_instrument=vary(chord_style.chord_instrument, INSTRUMENT_SPREADS, rng),
        chord_rhythm=_fit_grid(_mutate_pattern(rhythm, rng, 0.05), steps_per_bar),
        chord_style=chord_style,
        bass_pattern=_fit_grid(pick(rng, bass_style.bass_patterns), steps_per_bar),
        bass_style=bass_style,
        melody_style=STYLES[borrowed["melody"]],
    )


def vary(preset: _Preset, spreads: dict[str, float], rng: np.random.Generator) -> _Preset:
    """A track's own copy of `preset`: each parameter named in `spreads` times its own random
    factor (see `_jitter`), drawn in the order of `spreads`; other parameters are kept."""
    changes: dict[str, float] = {}
    for name, spread in spreads.items():
        value = getattr(preset, name)
        if name == "drive" and not value:
            continue  # a clean instrument stays clean and draws nothing
        changes[name] = min(_jitter(rng, value, spread), _CEILINGS.get(name, math.inf))
    return dataclasses.replace(preset, **changes)


def _jitter(rng: np.random.Generator, value: float, spread: float) -> float:
    """`value` times a log-uniform factor in [1/(1+spread), 1+spread]."""
    return float(value * math.exp(rng.uniform(-1, 1) * math.log1p(spread)))


def _borrowed_parts(genre: str, rng: np.random.Generator) -> dict[str, str]:
    """The genre each part (tempo, drums, chords, bass, melody) comes from: `genre` for all,
    except one part from another genre with probability `BORROW_PROBABILITY`."""
    parts = {"tempo": genre, "drums": genre, "chords": genre, "bass": genre, "melody": genre}
    if rng.random() < BORROW_PROBABILITY:
        part = pick(rng, list(parts))
        parts[part] = pick(rng, [name for name in GENRES if name != genre])
    return parts


def _choose_drums(
    drum_style: GenreStyle, steps_per_bar: int, rng: np.random.Generator
) -> dict[str, str]:
    """One drum pattern per voice, a few steps flipped, on the track's grid; no drums at all
    with probability 1 - `drum_style.drum_probability`."""
    if rng.random() >= drum_style.drum_probability:
        return {}
    template = pick(rng, drum_style.drum_patterns)
    drums = {
        voice: _fit_grid(_mutate_pattern(pattern, rng, 0.08), steps_per_bar)
        for voice, pattern in template.items()
    }
    for voice in drum_style.extra_voices:
        drums[voice] = _fit_grid("X...............", steps_per_bar)
    return drums


def _mutate_pattern(pattern: str, rng: np.random.Generator, rate: float) -> str:
    """Flip a few steps (a hit becomes a ghost or rest, a rest becomes a ghost) so no two tracks
    of a genre play exactly the same groove."""
    chars = list(pattern)
    for position, char in enumerate(chars):
        if rng.random() < rate:
            chars[position] = "o" if char == "." else rng.choice([".", "o"])
    return "".join(chars)


def _fit_grid(pattern: str, steps_per_bar: int) -> str:
    """Stretch or squeeze a pattern to another grid (a borrowed 16-step groove on a 12-step
    grid), keeping hits at their nearest step."""
    if len(pattern) == steps_per_bar:
        return pattern
    fitted = ["."] * steps_per_bar
    for position, char in enumerate(pattern):
        if char != ".":
            fitted[min(steps_per_bar - 1, round(position * steps_per_bar / len(pattern)))] = char
    return "".join(fitted)
