"""Instruments and drum kits of the demo data set: the timbres genre styles are built from.

Every preset is a starting point; each track varies it a little (see `tasks.demo.track_sound`).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Instrument:
    """A pitched voice: a band-limited wavetable (or 2-operator FM) with an envelope.

    Harmonic h has amplitude h**-rolloff (times `even_weight` for even h), boosted near
    `formant_hz`. `pluck` fades from the bright table to a dull one, like a string losing its
    upper partials. Times are seconds, `vibrato_cents` is the depth of a `vibrato_hz` sine.
    `drive` is tanh distortion (0: clean). `glides`: in a bass line, notes now and then slide
    in from the previous one, as an 808 bass does.
    """

    harmonics: int = 12
    rolloff: float = 1.0
    even_weight: float = 1.0
    formant_hz: float = 0.0
    attack_s: float = 0.005
    decay_s: float = 0.4
    sustain: float = 0.3
    release_s: float = 0.05
    pluck: float = 0.0
    vibrato_cents: float = 0.0
    vibrato_hz: float = 5.0
    detune_cents: float = 0.0
    fm_index: float = 0.0
    fm_ratio: float = 1.0
    breath: float = 0.0
    drive: float = 0.0
    glides: bool = False


@dataclasses.dataclass(frozen=True)
class DrumKit:
    """Parameters of the synthesised drum sounds (frequencies in Hz, decays in seconds)."""

    kick_start_hz: float = 150.0
    kick_end_hz: float = 50.0
    kick_decay_s: float = 0.25
    kick_click: float = 0.3
    snare_tone_hz: float = 190.0
    snare_decay_s: float = 0.15
    snare_band_hz: float = 3000.0
    hat_decay_s: float = 0.04
    hat_cutoff_hz: float = 7000.0
    tom_hz: float = 110.0
    tom_decay_s: float = 0.3
    level: float = 1.0


# Chords
GUITAR = Instrument(
    harmonics=24,
    rolloff=0.9,
    attack_s=0.004,
    decay_s=0.5,
    sustain=0.5,
    pluck=0.6,
    drive=3.0,
    detune_cents=8,
)
METAL_GUITAR = Instrument(
    harmonics=28,
    rolloff=0.7,
    attack_s=0.002,
    decay_s=0.12,
    sustain=0.35,
    pluck=0.3,
    drive=9.0,
    detune_cents=12,
)
SUPERSAW = Instrument(
    harmonics=30,
    rolloff=1.0,
    attack_s=0.02,
    decay_s=1.0,
    sustain=0.8,
    release_s=0.15,
    detune_cents=18,
)
RHODES = Instrument(
    attack_s=0.003,
    decay_s=0.9,
    sustain=0.15,
    release_s=0.2,
    fm_index=1.6,
    fm_ratio=1.0,
    harmonics=1,
)
DUSTY_PIANO = Instrument(
    harmonics=14, rolloff=1.6, attack_s=0.003, decay_s=0.7, sustain=0.05, pluck=0.8, release_s=0.2
)
ORGAN = Instrument(
    harmonics=8,
    rolloff=0.6,
    even_weight=0.7,
    attack_s=0.004,
    decay_s=0.08,
    sustain=0.8,
    release_s=0.03,
)
STRINGS = Instrument(
    harmonics=20,
    rolloff=1.3,
    attack_s=0.25,
    decay_s=2.0,
    sustain=0.9,
    release_s=0.4,
    vibrato_cents=12,
    vibrato_hz=5.5,
    detune_cents=6,
)
HARMONIUM = Instrument(
    harmonics=16,
    rolloff=0.8,
    even_weight=0.35,
    attack_s=0.08,
    decay_s=2.0,
    sustain=0.9,
    release_s=0.2,
    vibrato_cents=4,
)

# Bass lines
EKTARA = Instrument(
    harmonics=18, rolloff=0.8, attack_s=0.002, decay_s=0.35, sustain=0.0, pluck=0.9, formant_hz=1800
)
ROCK_BASS = Instrument(
    harmonics=10, rolloff=1.2, attack_s=0.004, decay_s=0.35, sustain=0.6, pluck=0.5, drive=1.5
)
SUB_BASS = Instrument(
    harmonics=2,
    rolloff=3.0,
    attack_s=0.005,
    decay_s=1.2,
    sustain=0.7,
    release_s=0.08,
    drive=1.2,
    glides=True,
)
UPRIGHT_BASS = Instrument(
    harmonics=8, rolloff=1.8, attack_s=0.006, decay_s=0.4, sustain=0.2, pluck=0.7
)
CELLO = Instrument(
    harmonics=16,
    rolloff=1.2,
    attack_s=0.2,
    decay_s=3.0,
    sustain=0.9,
    release_s=0.3,
    vibrato_cents=10,
)
SYNTH_BASS = Instrument(
    harmonics=16,
    rolloff=1.0,
    even_weight=0.2,
    attack_s=0.003,
    decay_s=0.2,
    sustain=0.5,
    release_s=0.03,
)

# Melodies
LEAD_GUITAR = Instrument(
    harmonics=22,
    rolloff=0.9,
    attack_s=0.01,
    decay_s=1.0,
    sustain=0.8,
    vibrato_cents=25,
    vibrato_hz=6.0,
    drive=4.0,
)
SAX = Instrument(
    harmonics=14,
    rolloff=1.1,
    even_weight=0.6,
    formant_hz=1200,
    attack_s=0.04,
    decay_s=1.0,
    sustain=0.8,
    vibrato_cents=18,
    vibrato_hz=5.0,
    breath=0.04,
)
VIOLIN = Instrument(
    harmonics=20,
    rolloff=1.1,
    formant_hz=2500,
    attack_s=0.08,
    decay_s=1.5,
    sustain=0.9,
    release_s=0.15,
    vibrato_cents=20,
    vibrato_hz=6.0,
)
SQUARE_LEAD = Instrument(
    harmonics=25,
    rolloff=1.0,
    even_weight=0.0,
    attack_s=0.005,
    decay_s=0.25,
    sustain=0.6,
    release_s=0.05,
    detune_cents=10,
)
BELL = Instrument(
    attack_s=0.002, decay_s=1.2, sustain=0.0, release_s=0.3, fm_index=2.5, fm_ratio=3.5, harmonics=1
)
VOICE = Instrument(
    harmonics=18,
    rolloff=1.0,
    formant_hz=800,
    attack_s=0.05,
    decay_s=1.0,
    sustain=0.8,
    release_s=0.1,
    vibrato_cents=30,
    vibrato_hz=5.5,
    breath=0.03,
)

# Held notes
DRONE = Instrument(
    harmonics=12, rolloff=1.2, attack_s=0.5, decay_s=5.0, sustain=0.9, vibrato_cents=3
)
"""The ektara/tanpura drone under baul songs (tonic and fifth held for the whole clip)."""
