"""The built-in demo data set: a small synthetic, hybrid-language GTZAN made from a seed.

`generate_demo_dataset` writes, under one folder,

    genres_original/<genre>/<genre>.NNNNN.wav   30 s, 22,050 Hz, mono, 16-bit PCM
    lyrics/<track_id>.txt | <track_id>.lrc | <Artist - Title>.txt   (10% of tracks have none)
    metadata.csv                                track_id, title, artist, genre, language, script,
                                                romanized, code_mixed, has_lyrics
    lyrics_truth.csv                            lyrics_file, track_id (ground truth of the pairing)
    demo_dataset.json                           how it was made (seed, size, format)

Audio is synthesised, not sampled: every genre has a tempo range, drum patterns and drum sounds,
instrument timbres (additive wavetables, FM), a scale or mode, chord progressions and rhythms, a
bass line style, and effects (distortion, reverb, dub delay, side-chain pumping, tone, vinyl
crackle). Each track then draws its own key, tempo, pattern mutations, timbre and mix settings
and noise, and now and then borrows one part from another genre, so genres overlap the way real
ones do and clustering by audio is learnable but not trivial.

Determinism: track k uses generators seeded from (seed, k) only, so it is byte-identical whatever
the number of tracks asked for, and the same seed always gives the same files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import unicodedata
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import soundfile as sf
from anyascii import anyascii
from pydantic import BaseModel, ConfigDict, Field
from scipy import signal

from tasks.demo_lyrics import (
    LANGUAGES,
    SCRIPT_OF_LANGUAGE,
    THEMES,
    SongName,
    compose_artist,
    compose_lyrics,
    compose_title,
    orphan_songs,
)

GENRES: tuple[str, ...] = tuple(sorted(THEMES))
"""The demo genres: baul, classical, electronic, hiphop, jazz, metal, reggae, rock."""

METADATA_COLUMNS: tuple[str, ...] = (
    "track_id",
    "title",
    "artist",
    "genre",
    "language",
    "script",
    "romanized",
    "code_mixed",
    "has_lyrics",
)
MARKER_FILE = "demo_dataset.json"
_GENERATED_ITEMS = ("genres_original", "lyrics", "metadata.csv", "lyrics_truth.csv", MARKER_FILE)

# How lyrics files are provided and how Bangla lyrics are written. Tracks take these in turn from
# seeded blocks (Bangla tracks and the others each have their own sequence): the first items of
# every block are one of each kind, so even a collection of a few dozen tracks has every kind,
# and the whole block fixes the proportions (exactly 1 in 10 without lyrics, for instance).
_LYRICS_STYLES_HEAD = ("none", "track_txt", "track_lrc", "artist_title")
_LYRICS_STYLES_TAIL = ("track_txt",) * 3 + ("track_lrc", "artist_title", "artist_title")
_BANGLA_LYRICS_STYLES_HEAD = ("none", "track_txt", "track_lrc", "artist_title_bengali")
_BANGLA_LYRICS_STYLES_TAIL = ("track_txt",) * 3 + (
    "track_lrc",
    "artist_title",
    "artist_title_bengali",
)
# Bangla lyrics: (script, code-mixed). Plain Bengali script 1/2, romanized 1/4, Bangla-English
# code-mixed in Bengali or Latin letters 1/8 each.
_BANGLA_VARIANTS_HEAD = (("Beng", False), ("Latn", False), ("Beng", True), ("Latn", True))
_BANGLA_VARIANTS_TAIL = (("Beng", False),) * 3 + (("Latn", False),)

# Purposes of random generators. Each generator is seeded from (seed, purpose, ...), so streams
# of different purposes, tracks or blocks never coincide.
_STREAM_METADATA, _STREAM_AUDIO, _STREAM_LYRICS, _STREAM_LANGUAGE, _STREAM_ORPHANS = range(5)
_STREAM_STYLES, _STREAM_BANGLA_STYLES, _STREAM_BANGLA_VARIANTS = range(5, 8)


def _rng(seed: int, purpose: int, *numbers: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, *numbers])


_Item = TypeVar("_Item")


class DemoDataError(ValueError):
    """A parameter of the demo generator is out of range, or the output folder is not free."""


class DemoDataset(BaseModel):
    """What `generate_demo_dataset` wrote."""

    model_config = ConfigDict(frozen=True)

    root: Path = Field(description="Folder holding genres_original/, lyrics/ and the CSV files.")
    n_tracks: int = Field(description="Number of audio tracks written.")
    genres: tuple[str, ...] = Field(description="Genres present, sorted.")
    languages: tuple[str, ...] = Field(description="ISO 639-1 lyric languages present, sorted.")
    seed: int = Field(description="Seed the collection was generated from.")
    sample_rate: int = Field(description="Sample rate of every WAV file, Hz.")
    duration_s: float = Field(description="Length of every clip, seconds.")

    @property
    def audio_dir(self) -> Path:
        return self.root / "genres_original"

    @property
    def lyrics_dir(self) -> Path:
        return self.root / "lyrics"

    @property
    def metadata_csv(self) -> Path:
        return self.root / "metadata.csv"

    @property
    def lyrics_truth_csv(self) -> Path:
        return self.root / "lyrics_truth.csv"


class DemoTrack(BaseModel):
    """Everything decided about one track before any audio is made."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position in the collection, from 0.")
    track_id: str = Field(description="`<genre>.NNNNN`, numbered per genre from 00000.")
    genre: str
    title: str = Field(description="Title in Latin letters (romanized for bn, hi, ar).")
    artist: str = Field(description="Artist in Latin letters (romanized for bn, hi, ar).")
    title_bengali: str | None = Field(description="Bengali-script title of Bangla songs.")
    artist_bengali: str | None = Field(description="Bengali-script artist of Bangla songs.")
    language: str = Field(description="ISO 639-1 code of the lyrics.")
    script: str = Field(description="ISO 15924 code of the script the lyrics are written in.")
    romanized: bool = Field(description="A non-Latin-script language written in Latin letters.")
    code_mixed: bool = Field(description="Bangla-English code-mixed lyrics.")
    lyrics_style: str = Field(
        description="none, track_txt, track_lrc, artist_title or artist_title_bengali (Bangla "
        "songs whose lyrics file is named 'Artist - Title' in Bengali script)."
    )
    lyrics_file: str | None = Field(description="File name under lyrics/, None without lyrics.")

    @property
    def has_lyrics(self) -> bool:
        return self.lyrics_style != "none"


# ==============================================================================================
# Genre styles


@dataclasses.dataclass(frozen=True)
class Instrument:
    """A pitched voice: a band-limited wavetable (or 2-operator FM) with an envelope.

    Harmonic h has amplitude h**-rolloff (times `even_weight` for even h), boosted near
    `formant_hz`. `pluck` fades from the bright table to a dull one, like a string losing its
    upper partials. Times are seconds, `vibrato_cents` is the depth of a `vibrato_hz` sine.
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


@dataclasses.dataclass(frozen=True)
class GenreStyle:
    """How one genre sounds, as ranges a track draws from.

    Drum patterns are strings with one character per grid step (`X` accent, `x` normal, `o`
    ghost, `.` rest), `steps_per_beat` 4 for straight sixteenths or 3 for a triplet/12-8 feel.
    Progressions are 0-based scale degrees, one chord per bar. Bass patterns use `R` root, `5`
    fifth, `O` octave, `W` a walking step towards the next chord, `.` rest.
    """

    tempo_bpm: tuple[float, float]
    steps_per_beat: int
    swing: tuple[float, float]
    modes: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]
    sevenths: bool
    drum_patterns: tuple[dict[str, str], ...]
    kit: DrumKit
    chord_instrument: Instrument
    chord_rhythms: tuple[str, ...]
    chord_steps: int
    chord_octave: int
    arpeggio: bool
    bass_instrument: Instrument
    bass_patterns: tuple[str, ...]
    bass_steps: int
    melody_instrument: Instrument
    melody_octave: int
    melody_notes_per_bar: tuple[int, int]
    melody_mode: str | None
    levels_db: dict[str, float]
    reverb_wet: tuple[float, float]
    reverb_s: tuple[float, float]
    lowpass_hz: tuple[float, float]
    noise_db: tuple[float, float]
    timing_jitter_s: float
    language_weights: dict[str, float]
    drone: bool = False
    dub_delay: bool = False
    pump: float = 0.0
    crackle: bool = False
    rubato: float = 0.0
    drum_probability: float = 1.0
    extra_voices: tuple[str, ...] = dataclasses.field(default_factory=tuple)


MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "bhairav": (0, 1, 4, 5, 7, 8, 11),
}
# Melodies in some genres keep to five notes of the mode (degrees of the 7-note scale).
MELODY_SUBSETS: dict[str, tuple[int, ...]] = {
    "pentatonic": (0, 1, 2, 4, 5),  # in major: 1 2 3 5 6
    "minor_pentatonic": (0, 2, 3, 4, 6),  # in minor: 1 b3 4 5 b7
}

_GUITAR = Instrument(
    harmonics=24,
    rolloff=0.9,
    attack_s=0.004,
    decay_s=0.5,
    sustain=0.5,
    pluck=0.6,
    drive=3.0,
    detune_cents=8,
)
_METAL_GUITAR = Instrument(
    harmonics=28,
    rolloff=0.7,
    attack_s=0.002,
    decay_s=0.12,
    sustain=0.35,
    pluck=0.3,
    drive=9.0,
    detune_cents=12,
)
_SUPERSAW = Instrument(
    harmonics=30,
    rolloff=1.0,
    attack_s=0.02,
    decay_s=1.0,
    sustain=0.8,
    release_s=0.15,
    detune_cents=18,
)
_RHODES = Instrument(
    attack_s=0.003,
    decay_s=0.9,
    sustain=0.15,
    release_s=0.2,
    fm_index=1.6,
    fm_ratio=1.0,
    harmonics=1,
)
_DUSTY_PIANO = Instrument(
    harmonics=14, rolloff=1.6, attack_s=0.003, decay_s=0.7, sustain=0.05, pluck=0.8, release_s=0.2
)
_ORGAN = Instrument(
    harmonics=8,
    rolloff=0.6,
    even_weight=0.7,
    attack_s=0.004,
    decay_s=0.08,
    sustain=0.8,
    release_s=0.03,
)
_STRINGS = Instrument(
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
_HARMONIUM = Instrument(
    harmonics=16,
    rolloff=0.8,
    even_weight=0.35,
    attack_s=0.08,
    decay_s=2.0,
    sustain=0.9,
    release_s=0.2,
    vibrato_cents=4,
)
_EKTARA = Instrument(
    harmonics=18, rolloff=0.8, attack_s=0.002, decay_s=0.35, sustain=0.0, pluck=0.9, formant_hz=1800
)

_ROCK_BASS = Instrument(
    harmonics=10, rolloff=1.2, attack_s=0.004, decay_s=0.35, sustain=0.6, pluck=0.5, drive=1.5
)
_SUB_BASS = Instrument(
    harmonics=2, rolloff=3.0, attack_s=0.005, decay_s=1.2, sustain=0.7, release_s=0.08, drive=1.2
)
_UPRIGHT_BASS = Instrument(
    harmonics=8, rolloff=1.8, attack_s=0.006, decay_s=0.4, sustain=0.2, pluck=0.7
)
_CELLO = Instrument(
    harmonics=16,
    rolloff=1.2,
    attack_s=0.2,
    decay_s=3.0,
    sustain=0.9,
    release_s=0.3,
    vibrato_cents=10,
)
_SYNTH_BASS = Instrument(
    harmonics=16,
    rolloff=1.0,
    even_weight=0.2,
    attack_s=0.003,
    decay_s=0.2,
    sustain=0.5,
    release_s=0.03,
)

_LEAD_GUITAR = Instrument(
    harmonics=22,
    rolloff=0.9,
    attack_s=0.01,
    decay_s=1.0,
    sustain=0.8,
    vibrato_cents=25,
    vibrato_hz=6.0,
    drive=4.0,
)
_SAX = Instrument(
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
_FLUTE = Instrument(
    harmonics=4,
    rolloff=2.5,
    attack_s=0.06,
    decay_s=1.0,
    sustain=0.85,
    release_s=0.1,
    vibrato_cents=15,
    vibrato_hz=5.0,
    breath=0.08,
)
_VIOLIN = Instrument(
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
_SQUARE_LEAD = Instrument(
    harmonics=25,
    rolloff=1.0,
    even_weight=0.0,
    attack_s=0.005,
    decay_s=0.25,
    sustain=0.6,
    release_s=0.05,
    detune_cents=10,
)
_BELL = Instrument(
    attack_s=0.002, decay_s=1.2, sustain=0.0, release_s=0.3, fm_index=2.5, fm_ratio=3.5, harmonics=1
)
_VOICE = Instrument(
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

STYLES: dict[str, GenreStyle] = {
    "rock": GenreStyle(
        tempo_bpm=(100, 145), steps_per_beat=4, swing=(0.0, 0.05),
        modes=("mixolydian", "minor", "major"),
        progressions=((0, 6, 3, 0), (0, 5, 2, 6), (0, 3, 4, 3), (0, 4, 5, 3)), sevenths=False,
        drum_patterns=(
            {"kick": "X.......X.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
            {"kick": "X.....x.X.......", "snare": "....X.......X..o", "hat": "x.x.x.x.x.x.x.x.",
             "crash": "X..............."},
        ),
        kit=DrumKit(kick_start_hz=140, kick_end_hz=55, kick_decay_s=0.22, snare_decay_s=0.18,
                    snare_band_hz=2500, hat_decay_s=0.05),
        chord_instrument=_GUITAR, chord_rhythms=("x.x.x.x.x.x.x.x.", "x..x..x.x..x..x."),
        chord_steps=2, chord_octave=48, arpeggio=False,
        bass_instrument=_ROCK_BASS, bass_patterns=("R.R.R.R.R.R.R.R.", "R.R.R.R.5.5.O.R."),
        bass_steps=2, melody_instrument=_LEAD_GUITAR, melody_octave=64,
        melody_notes_per_bar=(2, 6), melody_mode="minor_pentatonic",
        levels_db={"drums": 0, "bass": -4, "chords": -3, "melody": -6},
        reverb_wet=(0.1, 0.25), reverb_s=(0.8, 1.6), lowpass_hz=(8000, 10500),
        noise_db=(-60, -42), timing_jitter_s=0.006,
        language_weights={"en": 0.45, "bn": 0.35, "es": 0.2},
    ),
    "metal": GenreStyle(
        tempo_bpm=(135, 190), steps_per_beat=4, swing=(0.0, 0.0),
        modes=("phrygian", "minor", "harmonic_minor"),
        progressions=((0, 1, 0, 5), (0, 5, 6, 0), (0, 0, 1, 6)), sevenths=False,
        drum_patterns=(
            {"kick": "xxxxxxxxxxxxxxxx", "snare": "....X.......X...", "crash": "x...x...x...x..."},
            {"kick": "X.x.X.x.X.x.X.x.", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
             "crash": "X..............."},
        ),
        kit=DrumKit(kick_start_hz=180, kick_end_hz=60, kick_decay_s=0.12, kick_click=0.8,
                    snare_decay_s=0.12, snare_band_hz=3500, hat_decay_s=0.03, level=0.9),
        chord_instrument=_METAL_GUITAR, chord_rhythms=("xxxxxxxxxxxxxxxx", "x.xxx.xxx.xxx.xx"),
        chord_steps=1, chord_octave=40, arpeggio=False,
        bass_instrument=_ROCK_BASS, bass_patterns=("RRRRRRRRRRRRRRRR", "R.RRR.RRR.RRR.RR"),
        bass_steps=1, melody_instrument=_LEAD_GUITAR, melody_octave=67,
        melody_notes_per_bar=(4, 10), melody_mode=None,
        levels_db={"drums": -1, "bass": -6, "chords": 0, "melody": -7},
        reverb_wet=(0.08, 0.2), reverb_s=(0.6, 1.2), lowpass_hz=(9000, 10500),
        noise_db=(-60, -45), timing_jitter_s=0.003,
        language_weights={"en": 0.6, "es": 0.2, "bn": 0.2},
    ),
    "electronic": GenreStyle(
        tempo_bpm=(118, 132), steps_per_beat=4, swing=(0.0, 0.0),
        modes=("minor", "dorian", "phrygian"),
        progressions=((0, 5, 2, 6), (0, 3, 5, 4), (0, 0, 5, 5)), sevenths=True,
        drum_patterns=(
            {"kick": "X...X...X...X...", "clap": "....X.......X...", "open_hat": "..x...x...x...x.",
             "hat": "oooooooooooooooo"},
            {"kick": "X...X...X...X..x", "clap": "....X.......X...", "open_hat": "..x...x...x...x.",
             "hat": "o.o.o.o.o.o.o.o."},
        ),
        kit=DrumKit(kick_start_hz=120, kick_end_hz=45, kick_decay_s=0.35, kick_click=0.2,
                    hat_decay_s=0.03, hat_cutoff_hz=9000, level=1.0),
        chord_instrument=_SUPERSAW, chord_rhythms=("x...............", "x.......x......."),
        chord_steps=8, chord_octave=55, arpeggio=False,
        bass_instrument=_SYNTH_BASS, bass_patterns=("..R...R...R...R.", "R.RRR.RRR.RRR.RR"),
        bass_steps=1, melody_instrument=_SQUARE_LEAD, melody_octave=72,
        melody_notes_per_bar=(6, 12), melody_mode=None,
        levels_db={"drums": 0, "bass": -3, "chords": -8, "melody": -9},
        reverb_wet=(0.15, 0.3), reverb_s=(1.0, 2.0), lowpass_hz=(9000, 10500),
        noise_db=(-70, -55), timing_jitter_s=0.0,
        language_weights={"en": 0.45, "es": 0.2, "ar": 0.2, "hi": 0.15}, pump=0.6,
    ),
    "hiphop": GenreStyle(
        tempo_bpm=(78, 98), steps_per_beat=4, swing=(0.1, 0.3),
        modes=("minor", "dorian"),
        progressions=((0, 3), (0, 5, 3, 4), (0, 0, 5, 5)), sevenths=True,
        drum_patterns=(
            {"kick": "X......x..X.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
            {"kick": "X.....X...x..x..", "snare": "....X.......X...", "hat": "xxxxxxxxxxxxxxxx"},
        ),
        kit=DrumKit(kick_start_hz=110, kick_end_hz=48, kick_decay_s=0.4, kick_click=0.5,
                    snare_tone_hz=210, snare_decay_s=0.2, snare_band_hz=2000, hat_decay_s=0.035,
                    hat_cutoff_hz=6000, level=1.1),
        chord_instrument=_DUSTY_PIANO, chord_rhythms=("x.....x...x.....", "x.......x.x....."),
        chord_steps=4, chord_octave=55, arpeggio=False,
        bass_instrument=_SUB_BASS, bass_patterns=("R.........R..R..", "R.......R.....5."),
        bass_steps=6, melody_instrument=_BELL, melody_octave=72,
        melody_notes_per_bar=(1, 4), melody_mode="minor_pentatonic",
        levels_db={"drums": 0, "bass": -1, "chords": -6, "melody": -12},
        reverb_wet=(0.05, 0.15), reverb_s=(0.4, 0.9), lowpass_hz=(3500, 7000),
        noise_db=(-50, -36), timing_jitter_s=0.008,
        language_weights={"en": 0.4, "hi": 0.3, "bn": 0.15, "ar": 0.15}, crackle=True,
    ),
    "jazz": GenreStyle(
        tempo_bpm=(95, 180), steps_per_beat=3, swing=(0.0, 0.0),
        modes=("major", "dorian"),
        progressions=((1, 4, 0, 0), (1, 4, 0, 5), (0, 5, 1, 4)), sevenths=True,
        drum_patterns=(
            {"ride": "x..x.xx..x.x", "hat": "...x.....x..", "kick": "o.....o.....",
             "snare": "......o....o"},
            {"ride": "x..x.xx..x.x", "hat": "...x.....x..", "snare": "..o.....o..."},
        ),
        kit=DrumKit(kick_start_hz=90, kick_end_hz=55, kick_decay_s=0.2, kick_click=0.05,
                    snare_tone_hz=240, snare_decay_s=0.25, snare_band_hz=1800, hat_decay_s=0.05,
                    level=0.6),
        chord_instrument=_RHODES, chord_rhythms=("..x.....x...", "x....x..x...", ".....x....x."),
        chord_steps=3, chord_octave=55, arpeggio=False,
        bass_instrument=_UPRIGHT_BASS, bass_patterns=("W..W..W..W..",), bass_steps=3,
        melody_instrument=_SAX, melody_octave=62, melody_notes_per_bar=(3, 8),
        melody_mode=None,
        levels_db={"drums": -3, "bass": -2, "chords": -5, "melody": -4},
        reverb_wet=(0.15, 0.3), reverb_s=(0.8, 1.5), lowpass_hz=(5500, 9000),
        noise_db=(-58, -42), timing_jitter_s=0.012,
        language_weights={"en": 0.6, "es": 0.3, "bn": 0.1},
    ),
    "reggae": GenreStyle(
        tempo_bpm=(66, 90), steps_per_beat=4, swing=(0.05, 0.2),
        modes=("major", "minor", "mixolydian"),
        progressions=((0, 3, 4, 3), (0, 3), (0, 5, 3, 4)), sevenths=False,
        drum_patterns=(
            {"kick": "........X.......", "rim": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
            {"kick": "X.......X.......", "rim": "....x.......X...", "hat": "x.xxx.xxx.xxx.xx"},
        ),
        kit=DrumKit(kick_start_hz=100, kick_end_hz=50, kick_decay_s=0.3, kick_click=0.1,
                    hat_decay_s=0.05, level=0.9),
        chord_instrument=_ORGAN, chord_rhythms=("....x.......x...", "..x...x...x...x."),
        chord_steps=1, chord_octave=60, arpeggio=False,
        bass_instrument=_SUB_BASS, bass_patterns=("..R..R.5R....R..", "R..R..5...R.O..."),
        bass_steps=2, melody_instrument=_ORGAN, melody_octave=67,
        melody_notes_per_bar=(1, 4), melody_mode="pentatonic",
        levels_db={"drums": -2, "bass": 0, "chords": -5, "melody": -10},
        reverb_wet=(0.15, 0.3), reverb_s=(0.6, 1.4), lowpass_hz=(6000, 9500),
        noise_db=(-60, -45), timing_jitter_s=0.006,
        language_weights={"en": 0.55, "es": 0.35, "hi": 0.1}, dub_delay=True,
    ),
    "classical": GenreStyle(
        tempo_bpm=(60, 120), steps_per_beat=4, swing=(0.0, 0.0),
        modes=("major", "harmonic_minor"),
        progressions=((0, 3, 4, 0), (0, 5, 1, 4), (0, 4, 5, 3)), sevenths=False,
        drum_patterns=({},), kit=DrumKit(tom_hz=80, tom_decay_s=0.6, level=0.5),
        chord_instrument=_STRINGS, chord_rhythms=("x.x.x.x.x.x.x.x.", "x..............."),
        chord_steps=16, chord_octave=52, arpeggio=True,
        bass_instrument=_CELLO, bass_patterns=("R.......5.......", "R..............."),
        bass_steps=8, melody_instrument=_VIOLIN, melody_octave=69,
        melody_notes_per_bar=(2, 8), melody_mode=None,
        levels_db={"drums": -10, "bass": -4, "chords": -4, "melody": -3},
        reverb_wet=(0.3, 0.5), reverb_s=(1.8, 2.8), lowpass_hz=(7000, 10000),
        noise_db=(-66, -50), timing_jitter_s=0.01,
        language_weights={"en": 0.3, "es": 0.2, "ar": 0.2, "hi": 0.15, "bn": 0.15},
        rubato=0.04, drum_probability=0.25, extra_voices=("timpani",),
    ),
    "baul": GenreStyle(
        tempo_bpm=(88, 132), steps_per_beat=3, swing=(0.0, 0.0),
        modes=("mixolydian", "bhairav", "major"),
        progressions=((0, 0, 6, 0), (0, 3, 0, 4), (0, 0, 0, 0)), sevenths=False,
        drum_patterns=(
            {"tom_low": "x.....x..x..", "tom_high": "..x.x...x.x.", "hat": "x..x..x..x.."},
            {"tom_low": "x..x..x.....", "tom_high": ".x.x.xx.x.xx", "hat": "x.....x....."},
        ),
        kit=DrumKit(tom_hz=95, tom_decay_s=0.22, hat_decay_s=0.08, hat_cutoff_hz=5000,
                    level=0.8),
        chord_instrument=_HARMONIUM, chord_rhythms=("x...........", "x.....x....."),
        chord_steps=6, chord_octave=55, arpeggio=False,
        bass_instrument=_EKTARA, bass_patterns=("R..R..R..R..", "R.RR.RR.RR.R"), bass_steps=1,
        melody_instrument=_VOICE, melody_octave=62, melody_notes_per_bar=(3, 7),
        melody_mode="pentatonic",
        levels_db={"drums": -3, "bass": -5, "chords": -9, "melody": -2},
        reverb_wet=(0.1, 0.25), reverb_s=(0.6, 1.2), lowpass_hz=(5000, 8500),
        noise_db=(-55, -40), timing_jitter_s=0.015,
        language_weights={"bn": 0.85, "hi": 0.08, "en": 0.07}, drone=True, rubato=0.02,
    ),
}  # fmt: skip
"""Sound of each genre; keys equal `GENRES`."""

_BORROW_PROBABILITY = 0.3  # chance that a track takes one part of its sound from another genre


# ==============================================================================================
# Planning: metadata of every track


def plan_demo_tracks(tracks: int, seed: int = 0) -> list[DemoTrack]:
    """Decide genre, language, script, title, artist and lyrics file of each track; no I/O.

    Genres rotate (track k has genre `GENRES[k % 8]`), so they stay balanced at any size. Track
    k's plan depends only on `seed`, k and the plans of tracks before it (titles are kept
    unique), so it is the same whatever `tracks` is.

    Raises:
        DemoDataError: if `tracks` < 1.
    """
    if tracks < 1:
        raise DemoDataError(f"tracks={tracks} must be at least 1")
    used_titles: set[str] = set()
    bangla_count = other_count = 0
    plans = []
    for index in range(tracks):
        genre = GENRES[index % len(GENRES)]
        number = index // len(GENRES)
        rng = _rng(seed, _STREAM_METADATA, index)
        language = _language_of(seed, genre, number)
        script, code_mixed = SCRIPT_OF_LANGUAGE[language], False
        if language == "bn":
            script, code_mixed = _take_in_turn(
                seed, _STREAM_BANGLA_VARIANTS, bangla_count, _BANGLA_VARIANTS_HEAD,
                _BANGLA_VARIANTS_TAIL,
            )  # fmt: skip
            style = _take_in_turn(
                seed, _STREAM_BANGLA_STYLES, bangla_count, _BANGLA_LYRICS_STYLES_HEAD,
                _BANGLA_LYRICS_STYLES_TAIL,
            )  # fmt: skip
            bangla_count += 1
        else:
            style = _take_in_turn(
                seed, _STREAM_STYLES, other_count, _LYRICS_STYLES_HEAD, _LYRICS_STYLES_TAIL
            )
            other_count += 1
        title, artist = _unique_song(genre, language, rng, used_titles)
        track_id = f"{genre}.{number:05d}"
        plans.append(
            DemoTrack(
                index=index,
                track_id=track_id,
                genre=genre,
                title=title.latin,
                artist=artist.latin,
                title_bengali=title.bengali,
                artist_bengali=artist.bengali,
                language=language,
                script=script,
                romanized=language == "bn" and script == "Latn",
                code_mixed=code_mixed,
                lyrics_style=style,
                lyrics_file=_lyrics_file_name(style, track_id, title, artist, rng),
            )
        )
    return plans


def _take_in_turn(
    seed: int, stream: int, ordinal: int, head: tuple[_Item, ...], tail: tuple[_Item, ...]
) -> _Item:
    """The `ordinal`-th item of a sequence of seeded blocks, each a shuffle of `head` followed
    by a shuffle of `tail`."""
    block, position = divmod(ordinal, len(head) + len(tail))
    rng = _rng(seed, stream, block)
    items = [head[i] for i in rng.permutation(len(head))] + [
        tail[i] for i in rng.permutation(len(tail))
    ]
    return items[position]


def _language_of(seed: int, genre: str, number: int) -> str:
    """Language of the `number`-th track of `genre`, by a golden-ratio sequence over the genre's
    language weights: frequencies follow the weights closely even for a few tracks per genre."""
    weights = STYLES[genre].language_weights
    offset = _rng(seed, _STREAM_LANGUAGE, GENRES.index(genre)).random()
    quantile = (offset + number * 0.6180339887498949) % 1.0
    cumulative = np.cumsum(list(weights.values()))
    position = int(np.searchsorted(cumulative / cumulative[-1], quantile, side="right"))
    return list(weights)[min(position, len(weights) - 1)]


def _song_key(text: str) -> str:
    return " ".join(anyascii(text).lower().split())


def _unique_song(
    genre: str,
    language: str,
    rng: np.random.Generator,
    used_titles: set[str],
) -> tuple[SongName, SongName]:
    """Title and artist with a title no earlier track has (compared after romanizing), so
    pairing lyrics files by "Artist - Title" is never ambiguous."""
    for attempt in range(200):
        title = compose_title(genre, language, rng)
        artist = compose_artist(genre, language, rng)
        if attempt >= 100:  # the vocabulary is exhausted for this language: number the title
            suffix = f" {attempt - 98}"
            title = SongName(title.latin + suffix, title.bengali and title.bengali + suffix)
        title_key = _song_key(title.latin)
        if title_key not in used_titles:
            used_titles.add(title_key)
            return title, artist
    raise RuntimeError("no unique title found in 200 draws")  # unreachable: numbered titles


def _safe_file_stem(text: str) -> str:
    cleaned = "".join(" " if char in '/\\:*?"<>|' else char for char in text)
    return unicodedata.normalize("NFC", " ".join(cleaned.split()))


def _lyrics_file_name(
    style: str,
    track_id: str,
    title: SongName,
    artist: SongName,
    rng: np.random.Generator,
) -> str | None:
    if style == "none":
        return None
    if style == "track_txt":
        return f"{track_id}.txt"
    if style == "track_lrc":
        return f"{track_id}.lrc"
    if style == "artist_title_bengali" and title.bengali and artist.bengali:
        return f"{_safe_file_stem(f'{artist.bengali} - {title.bengali}')}.txt"
    stem = f"{artist.latin} - {title.latin}"
    variant = rng.random()
    if variant < 0.2:
        stem = stem.lower()
    elif variant < 0.3:
        stem = stem.replace(" ", "_")
    elif variant < 0.4:
        stem = anyascii(stem)  # accents lost, as when a file passes through an old tool
    return f"{_safe_file_stem(stem)}.txt"


# ==============================================================================================
# Audio synthesis


@dataclasses.dataclass(frozen=True)
class _TrackSound:
    """The choices one track made from its genre's style (and maybe one borrowed part)."""

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


def _jitter(rng: np.random.Generator, value: float, spread: float) -> float:
    """`value` times a log-uniform factor in [1/(1+spread), 1+spread]."""
    return float(value * math.exp(rng.uniform(-1, 1) * math.log1p(spread)))


def _jitter_instrument(instrument: Instrument, rng: np.random.Generator) -> Instrument:
    return Instrument(
        harmonics=instrument.harmonics,
        rolloff=_jitter(rng, instrument.rolloff, 0.25),
        even_weight=instrument.even_weight,
        formant_hz=_jitter(rng, instrument.formant_hz, 0.3),
        attack_s=_jitter(rng, instrument.attack_s, 0.4),
        decay_s=_jitter(rng, instrument.decay_s, 0.4),
        sustain=min(1.0, _jitter(rng, instrument.sustain, 0.3)),
        release_s=instrument.release_s,
        pluck=instrument.pluck,
        vibrato_cents=_jitter(rng, instrument.vibrato_cents, 0.5),
        vibrato_hz=_jitter(rng, instrument.vibrato_hz, 0.2),
        detune_cents=instrument.detune_cents,
        fm_index=_jitter(rng, instrument.fm_index, 0.4),
        fm_ratio=instrument.fm_ratio,
        breath=instrument.breath,
        drive=_jitter(rng, instrument.drive, 0.5) if instrument.drive else 0.0,
    )


def _jitter_kit(kit: DrumKit, rng: np.random.Generator) -> DrumKit:
    return DrumKit(
        kick_start_hz=_jitter(rng, kit.kick_start_hz, 0.2),
        kick_end_hz=_jitter(rng, kit.kick_end_hz, 0.15),
        kick_decay_s=_jitter(rng, kit.kick_decay_s, 0.3),
        kick_click=_jitter(rng, kit.kick_click, 0.5),
        snare_tone_hz=_jitter(rng, kit.snare_tone_hz, 0.15),
        snare_decay_s=_jitter(rng, kit.snare_decay_s, 0.3),
        snare_band_hz=_jitter(rng, kit.snare_band_hz, 0.3),
        hat_decay_s=_jitter(rng, kit.hat_decay_s, 0.4),
        hat_cutoff_hz=min(9500.0, _jitter(rng, kit.hat_cutoff_hz, 0.2)),
        tom_hz=_jitter(rng, kit.tom_hz, 0.2),
        tom_decay_s=_jitter(rng, kit.tom_decay_s, 0.3),
        level=kit.level,
    )


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


def _choose_sound(genre: str, rng: np.random.Generator) -> _TrackSound:
    style = STYLES[genre]
    others = [name for name in GENRES if name != genre]
    borrowed = {"tempo": genre, "drums": genre, "chords": genre, "bass": genre, "melody": genre}
    if rng.random() < _BORROW_PROBABILITY:
        part = list(borrowed)[int(rng.integers(len(borrowed)))]
        borrowed[part] = others[int(rng.integers(len(others)))]
    tempo_style = STYLES[borrowed["tempo"]]
    drum_style = STYLES[borrowed["drums"]]
    steps_per_beat = style.steps_per_beat
    steps_per_bar = 4 * steps_per_beat
    drums: dict[str, str] = {}
    if rng.random() < drum_style.drum_probability:
        template = drum_style.drum_patterns[int(rng.integers(len(drum_style.drum_patterns)))]
        drums = {
            voice: _fit_grid(_mutate_pattern(pattern, rng, 0.08), steps_per_bar)
            for voice, pattern in template.items()
        }
        for voice in drum_style.extra_voices:
            drums[voice] = _fit_grid("X...............", steps_per_bar)
    chord_style = STYLES[borrowed["chords"]]
    rhythm = chord_style.chord_rhythms[int(rng.integers(len(chord_style.chord_rhythms)))]
    return _TrackSound(
        bpm=float(rng.uniform(*tempo_style.tempo_bpm)),
        steps_per_beat=steps_per_beat,
        swing=float(rng.uniform(*style.swing)),
        key_pitch_class=int(rng.integers(0, 12)),
        mode=MODES[style.modes[int(rng.integers(len(style.modes)))]],
        progression=style.progressions[int(rng.integers(len(style.progressions)))],
        drums=drums,
        kit=_jitter_kit(drum_style.kit, rng),
        chord_instrument=_jitter_instrument(chord_style.chord_instrument, rng),
        chord_rhythm=_fit_grid(_mutate_pattern(rhythm, rng, 0.05), steps_per_bar),
        chord_style=chord_style,
        bass_pattern=_fit_grid(
            STYLES[borrowed["bass"]].bass_patterns[
                int(rng.integers(len(STYLES[borrowed["bass"]].bass_patterns)))
            ],
            steps_per_bar,
        ),
        bass_style=STYLES[borrowed["bass"]],
        melody_style=STYLES[borrowed["melody"]],
    )


def _midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _scale_midi(root_midi: int, mode: tuple[int, ...], degree: int) -> int:
    """MIDI note of a scale degree above `root_midi` (negative or beyond 7: octaves wrap)."""
    octave, step = divmod(degree, len(mode))
    return root_midi + 12 * octave + mode[step]


class _Synth:
    """Renders notes and drum hits of one track into a float64 buffer [shape=(n_samples,)]."""

    # large enough that nearest-sample lookup is as clean as interpolation, and a power of two
    # so the phase wraps with a bit mask
    _TABLE_SIZE = 8192

    def __init__(self, sample_rate: int, n_samples: int, rng: np.random.Generator) -> None:
        self.sample_rate = sample_rate
        self.n_samples = n_samples
        self.rng = rng
        self._tables: dict[tuple[Instrument, int], tuple[np.ndarray, np.ndarray]] = {}

    def _wavetables(self, instrument: Instrument, max_hz: float) -> tuple[np.ndarray, np.ndarray]:
        """Dull single-cycle table and (bright - dull), with no harmonic above 0.45 * sample_rate
        at `max_hz` (band-limited, so high notes do not alias)."""
        usable = max(1, min(instrument.harmonics, int(0.45 * self.sample_rate / max_hz)))
        key = (instrument, usable)
        if key not in self._tables:
            harmonic = np.arange(1, usable + 1, dtype=np.float64)
            amplitude = harmonic**-instrument.rolloff
            amplitude[1::2] *= instrument.even_weight
            if instrument.formant_hz > 0:
                # a resonance around formant_hz for a note near 220 Hz gives a vocal or reedy tone
                amplitude *= 1.0 + 3.0 * np.exp(
                    -(((harmonic * 220.0 - instrument.formant_hz) / 400.0) ** 2)
                )
            dull = amplitude * harmonic**-1.5
            phase = np.arange(self._TABLE_SIZE) / self._TABLE_SIZE * 2 * np.pi
            partials = np.sin(np.outer(harmonic, phase))
            bright_table = amplitude @ partials
            dull_table = dull @ partials
            bright_table /= np.abs(bright_table).max()
            dull_table /= np.abs(dull_table).max()
            self._tables[key] = (dull_table, bright_table - dull_table)
        return self._tables[key]

    def _envelope(self, instrument: Instrument, length: int, gate: int) -> np.ndarray:
        """Attack, exponential decay towards `sustain`, release after `gate` samples."""
        t = np.arange(length) / self.sample_rate
        attack = np.minimum(1.0, t / max(instrument.attack_s, 1e-4))
        decay = instrument.sustain + (1 - instrument.sustain) * np.exp(
            -np.maximum(t - instrument.attack_s, 0) / max(instrument.decay_s, 1e-3)
        )
        envelope = attack * decay
        if gate < length:
            release = np.exp(-(t[gate:] - t[gate]) / max(instrument.release_s, 1e-3))
            envelope[gate:] *= release
        return envelope

    def note(
        self,
        buffer: np.ndarray,
        start_s: float,
        duration_s: float,
        midi: float,
        instrument: Instrument,
        velocity: float,
        *,
        glide_from: float | None = None,
    ) -> None:
        """Add one note to `buffer` (in place). `glide_from` slides in from that MIDI pitch."""
        start = max(0, round(start_s * self.sample_rate))  # timing jitter may push a note < 0
        if start >= self.n_samples or duration_s <= 0:
            return
        gate = max(1, round(duration_s * self.sample_rate))
        length = min(
            gate + round(4 * instrument.release_s * self.sample_rate), self.n_samples - start
        )
        t = np.arange(length) / self.sample_rate
        hz = float(_midi_to_hz(midi))
        max_hz = hz
        if glide_from is None and instrument.vibrato_cents <= 0:
            cycles = hz * t + self.rng.random()  # steady pitch: the phase is a straight line
        else:
            frequency = np.full(length, hz)
            if glide_from is not None:
                frequency *= (float(_midi_to_hz(glide_from)) / hz) ** np.exp(-t / 0.06)
            if instrument.vibrato_cents > 0:
                # vibrato fades in, as a singer's or violinist's does
                depth = instrument.vibrato_cents / 1200 * np.minimum(1.0, t / 0.3)
                frequency *= 2.0 ** (depth * np.sin(2 * np.pi * instrument.vibrato_hz * t))
            cycles = np.cumsum(frequency) / self.sample_rate + self.rng.random()
            max_hz = float(frequency.max())
        envelope = self._envelope(instrument, length, gate) * velocity
        if instrument.fm_index > 0:
            # two-operator FM whose index decays with the note: bell or electric-piano tone
            index = instrument.fm_index * np.exp(-t / max(instrument.decay_s * 0.5, 1e-3))
            voice = np.sin(
                2 * np.pi * cycles + index * np.sin(2 * np.pi * instrument.fm_ratio * cycles)
            )
        else:
            voice = self._lookup(instrument, cycles, max_hz, t)
            if instrument.detune_cents > 0:
                detuned = cycles * 2.0 ** (instrument.detune_cents / 1200) + 0.37
                voice = 0.5 * (voice + self._lookup(instrument, detuned, max_hz, t))
        if instrument.breath > 0:
            voice = voice + instrument.breath * self.rng.standard_normal(length)
        if instrument.drive > 0:
            voice = np.tanh(instrument.drive * voice) / np.tanh(instrument.drive)
        buffer[start : start + length] += voice * envelope

    def _lookup(
        self, instrument: Instrument, cycles: np.ndarray, max_hz: float, t: np.ndarray
    ) -> np.ndarray:
        dull, bright_minus_dull = self._wavetables(instrument, max_hz)
        index = (cycles * self._TABLE_SIZE).astype(np.int64) & (self._TABLE_SIZE - 1)
        if instrument.pluck <= 0:
            return dull[index] + bright_minus_dull[index]
        brightness = np.exp(-t * 12.0 * instrument.pluck)
        return dull[index] + brightness * bright_minus_dull[index]

    # --- drums -----------------------------------------------------------------------------

    def drum_sound(self, voice: str, kit: DrumKit) -> np.ndarray:
        """One-shot sample of a drum voice [shape=(n,)], peak about 1."""
        sr = self.sample_rate
        lengths = {
            "kick": 0.6,
            "snare": 0.4,
            "clap": 0.35,
            "rim": 0.08,
            "hat": 0.25,
            "open_hat": 0.6,
            "ride": 1.2,
            "crash": 1.8,
            "tom_low": 0.7,
            "tom_high": 0.5,
            "timpani": 1.5,
        }
        t = np.arange(round(lengths[voice] * sr)) / sr
        noise = self.rng.standard_normal(t.size)
        if voice == "kick":
            pitch = kit.kick_end_hz + (kit.kick_start_hz - kit.kick_end_hz) * np.exp(-t / 0.035)
            body = np.sin(2 * np.pi * np.cumsum(pitch) / sr) * np.exp(-t / kit.kick_decay_s)
            return body + kit.kick_click * noise * np.exp(-t / 0.003)
        if voice in ("snare", "clap"):
            band = self._band(noise, kit.snare_band_hz * 0.5, min(kit.snare_band_hz * 2, 10000))
            band /= np.abs(band).max()
            if voice == "clap":
                bursts = sum(
                    np.exp(-np.maximum(t - delay, 0) / 0.006) * (t >= delay)
                    for delay in (0.0, 0.011, 0.022)
                )
                return band * (0.6 * bursts + np.exp(-np.maximum(t - 0.03, 0) / 0.08))
            tone = np.sin(2 * np.pi * kit.snare_tone_hz * t) * np.exp(-t / 0.05)
            return 0.8 * band * np.exp(-t / kit.snare_decay_s) + 0.5 * tone
        if voice == "rim":
            return np.sin(2 * np.pi * 1700 * t) * np.exp(-t / 0.012) + 0.3 * noise * np.exp(
                -t / 0.004
            )
        if voice in ("hat", "open_hat", "crash"):
            high = self._highpass(noise, kit.hat_cutoff_hz * (0.6 if voice == "crash" else 1.0))
            high /= np.abs(high).max()
            decay = {"hat": kit.hat_decay_s, "open_hat": 0.25, "crash": 0.9}[voice]
            return high * np.exp(-t / decay)
        if voice == "ride":
            # inharmonic square-ish partials give the metallic ring of a cymbal
            partials = 420 * np.array([1.0, 1.48, 1.95, 2.63, 3.3, 4.14])
            metal = np.sign(np.sin(2 * np.pi * np.outer(partials, t))).mean(axis=0)
            high = self._highpass(noise, 6000)
            return (0.5 * metal + 0.6 * high / np.abs(high).max()) * np.exp(-t / 0.5)
        # hand drums (khol, dhol) and timpani: a pitched membrane that bends down after the hit
        base = {"tom_low": kit.tom_hz, "tom_high": kit.tom_hz * 2.4, "timpani": kit.tom_hz}[voice]
        decay = kit.tom_decay_s * (0.6 if voice == "tom_high" else 1.0)
        if voice == "timpani":
            decay = 0.9
        pitch = base * (1 + 0.3 * np.exp(-t / 0.04))
        cycles = np.cumsum(pitch) / sr
        body = np.sin(2 * np.pi * cycles) + 0.4 * np.sin(2 * np.pi * 1.5 * cycles)
        slap = self._highpass(noise, 2500) * np.exp(-t / 0.01)
        return body * np.exp(-t / decay) + 0.2 * slap / max(np.abs(slap).max(), 1e-9)

    def _band(self, x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
        nyquist = self.sample_rate / 2
        sos = signal.butter(
            2, [low_hz / nyquist, min(high_hz / nyquist, 0.95)], "bandpass", output="sos"
        )
        return signal.sosfilt(sos, x)

    def _highpass(self, x: np.ndarray, cutoff_hz: float) -> np.ndarray:
        sos = signal.butter(
            2, min(cutoff_hz / (self.sample_rate / 2), 0.95), "highpass", output="sos"
        )
        return signal.sosfilt(sos, x)

    def lowpass(self, x: np.ndarray, cutoff_hz: float) -> np.ndarray:
        sos = signal.butter(
            2, min(cutoff_hz / (self.sample_rate / 2), 0.95), "lowpass", output="sos"
        )
        return signal.sosfilt(sos, x)


def _step_times(
    sound: _TrackSound, rubato: float, n_bars: int, rng: np.random.Generator
) -> np.ndarray:
    """Onset time in seconds of every grid step [shape=(n_bars * steps_per_bar + 1,)], with
    swing on off-steps and (for rubato genres) each bar a little faster or slower."""
    steps_per_bar = 4 * sound.steps_per_beat
    step_s = 60.0 / sound.bpm / sound.steps_per_beat
    # bars vary independently around the tempo, so the clip never drifts far from it
    bar_factor = np.exp(np.clip(rng.normal(0, rubato, n_bars), -2.5 * rubato, 2.5 * rubato))
    durations = np.repeat(bar_factor, steps_per_bar) * step_s
    starts = np.concatenate([[0.0], np.cumsum(durations)])
    if sound.swing > 0 and sound.steps_per_beat == 4:
        # off-beat sixteenths are late by `swing` of a step and the next step keeps its place
        off = np.arange(1, starts.size - 1, 2)
        starts[off] += sound.swing * durations[off]
    return starts


def _velocity(char: str) -> float:
    return {"X": 1.0, "x": 0.8, "o": 0.4}.get(char, 0.0)


def _chord_tones(sound: _TrackSound, degree: int, octave_midi: int, sevenths: bool) -> list[int]:
    tones = [
        _scale_midi(sound.key_pitch_class, sound.mode, degree + 2 * k)
        for k in range(4 if sevenths else 3)
    ]
    base = octave_midi - 6
    # voice the chord close to the instrument's register
    return [tone + 12 * math.ceil((base - tone) / 12) for tone in tones]


def synthesize_track(
    genre: str,
    rng: np.random.Generator,
    *,
    sample_rate: int = 22050,
    duration_s: float = 30.0,
) -> np.ndarray:
    """Synthesise one clip of `genre`.

    Args:
        genre: one of `GENRES`.
        rng: the track's generator; equal generator states give equal audio.
        sample_rate: Hz.
        duration_s: clip length in seconds.

    Returns:
        np.ndarray [shape=(round(duration_s * sample_rate),), dtype=float32], peak at most 0.9.

    Raises:
        DemoDataError: on an unknown genre.
    """
    if genre not in STYLES:
        raise DemoDataError(f"genre={genre!r} is not one of {GENRES}")
    style = STYLES[genre]
    sound = _choose_sound(genre, rng)
    n_samples = round(duration_s * sample_rate)
    synth = _Synth(sample_rate, n_samples, rng)
    steps_per_bar = 4 * sound.steps_per_beat
    bar_s = 60.0 / sound.bpm * 4
    n_bars = math.ceil(duration_s / (bar_s * math.exp(-3 * style.rubato))) + 1
    starts = _step_times(
        sound, style.rubato, n_bars + 2, rng
    )  # a two-bar motif may start in the last bar
    step_s = 60.0 / sound.bpm / sound.steps_per_beat
    jitter_s = style.timing_jitter_s

    def onset(step: int) -> float:
        return float(starts[step] + (rng.normal(0, jitter_s) if jitter_s else 0.0))

    buses = {name: np.zeros(n_samples) for name in ("drums", "bass", "chords", "melody")}

    # drums
    for voice, pattern in sound.drums.items():
        hit = synth.drum_sound(voice, sound.kit)
        for bar in range(n_bars):
            for position, char in enumerate(pattern):
                velocity = _velocity(char)
                if voice in ("crash", "timpani") and bar % 4:
                    continue  # cymbal crashes and timpani rolls mark phrase starts only
                if velocity == 0:
                    continue
                start = round(onset(bar * steps_per_bar + position) * sample_rate)
                if 0 <= start < n_samples:
                    end = min(n_samples, start + hit.size)
                    scale = velocity * rng.uniform(0.85, 1.0)
                    buses["drums"][start:end] += scale * hit[: end - start]
    buses["drums"] *= sound.kit.level

    # chords: one per bar from the progression, played in the chord rhythm
    chord_style = sound.chord_style
    chord_drive = sound.chord_instrument.drive
    # distortion acts on the whole chord (as an amp does), so notes are rendered clean
    chord_instrument = dataclasses.replace(sound.chord_instrument, drive=0.0)
    for bar in range(n_bars):
        degree = sound.progression[bar % len(sound.progression)]
        tones = _chord_tones(sound, degree, chord_style.chord_octave, chord_style.sevenths)
        if chord_drive > 0:
            # distorted guitars play power chords: root, fifth and octave
            tones = [tones[0], tones[0] + 7, tones[0] + 12]
        for position, char in enumerate(sound.chord_rhythm):
            velocity = _velocity(char)
            if velocity == 0:
                continue
            step = bar * steps_per_bar + position
            length = min(chord_style.chord_steps, steps_per_bar - position) * step_s
            if chord_style.arpeggio:
                # broken chord: one tone per hit, cycling up the chord
                tone = tones[(position // 2) % len(tones)] + (12 if position >= 8 else 0)
                synth.note(buses["chords"], onset(step), length, tone, chord_instrument, velocity)
                continue
            for tone in tones:
                synth.note(
                    buses["chords"],
                    onset(step),
                    length,
                    tone,
                    chord_instrument,
                    velocity / len(tones) ** 0.5,
                )
    if chord_drive > 0:
        chord_peak = max(np.abs(buses["chords"]).max(), 1e-9)
        buses["chords"] = np.tanh(chord_drive * buses["chords"] / chord_peak)

    # bass
    bass_style = sound.bass_style
    bass_octave = 36 + (sound.key_pitch_class % 12)
    if bass_octave > 43:
        bass_octave -= 12
    bass_instrument = _jitter_instrument(bass_style.bass_instrument, rng)
    slides = bass_style.bass_instrument is _SUB_BASS  # 808-style bass glides between notes
    previous: float | None = None
    for bar in range(n_bars):
        degree = sound.progression[bar % len(sound.progression)]
        next_degree = sound.progression[(bar + 1) % len(sound.progression)]
        root = bass_octave + (_scale_midi(0, sound.mode, degree) % 12)
        target = bass_octave + (_scale_midi(0, sound.mode, next_degree) % 12)
        walk = 0
        for position, char in enumerate(sound.bass_pattern):
            if char == ".":
                continue
            if char == "W":
                # walking bass: chord tones, then a chromatic approach into the next root
                beats_left = sound.bass_pattern[position + 1 :].count("W")
                chord = [_scale_midi(bass_octave, sound.mode, degree + step) for step in (0, 2, 4)]
                midi = target - 1 if beats_left == 0 else chord[walk % 3]
                walk += 1
            else:
                midi = root + {"R": 0, "5": 7, "O": 12}[char]
            length = bass_style.bass_steps * step_s
            glide = previous if slides and rng.random() < 0.3 else None
            synth.note(
                buses["bass"],
                onset(bar * steps_per_bar + position),
                length,
                midi,
                bass_instrument,
                0.9,
                glide_from=glide,
            )
            previous = midi
    if style.drone:
        # the ektara/tanpura drone: tonic and fifth for the whole clip
        drone = Instrument(
            harmonics=12, rolloff=1.2, attack_s=0.5, decay_s=5.0, sustain=0.9, vibrato_cents=3
        )
        for midi in (bass_octave + 12, bass_octave + 19):
            synth.note(buses["chords"], 0.0, duration_s, midi, drone, 0.35)

    # melody: a two-bar motif repeated with variations, resting in some bars
    melody_style = sound.melody_style
    melody_mode = melody_style.melody_mode
    degrees = MELODY_SUBSETS[melody_mode] if melody_mode else tuple(range(7))
    melody_instrument = _jitter_instrument(melody_style.melody_instrument, rng)
    low, high = melody_style.melody_notes_per_bar
    motif: list[tuple[int, int]] = []  # (step within two bars, index into the melody scale)
    scale_index = int(rng.integers(0, len(degrees)))
    for bar in range(2):
        count = int(rng.integers(low, high + 1))
        positions = np.sort(
            rng.choice(steps_per_bar, size=min(count, steps_per_bar), replace=False)
        )
        for position in positions:
            scale_index = int(np.clip(scale_index + rng.integers(-2, 3), -3, 2 * len(degrees)))
            motif.append((bar * steps_per_bar + int(position), scale_index))
    melody_root = (
        melody_style.melody_octave
        - 6
        + ((sound.key_pitch_class - melody_style.melody_octave + 6) % 12)
    )
    last_midi: float | None = None
    for phrase in range(0, n_bars, 2):
        if rng.random() < 0.25:
            continue  # the melody rests for this phrase
        for index, (step, motif_index) in enumerate(motif):
            if rng.random() < 0.2:
                motif_index += int(rng.integers(-2, 3))
            octave, within = divmod(motif_index, len(degrees))
            midi = _scale_midi(melody_root, sound.mode, degrees[within]) + 12 * octave
            following = motif[index + 1][0] if index + 1 < len(motif) else 2 * steps_per_bar
            length = max(1, following - step) * step_s * 0.9
            glide = last_midi if genre == "baul" and rng.random() < 0.5 else None
            synth.note(
                buses["melody"],
                onset(phrase * steps_per_bar + step),
                length,
                midi,
                melody_instrument,
                rng.uniform(0.6, 0.9),
                glide_from=glide,
            )
            last_midi = midi

    # effects that belong to one bus
    if style.pump > 0:
        # side-chain pumping: chords and bass duck on every beat under the kick
        beat_times = np.arange(0, duration_s, 60.0 / sound.bpm)
        t = np.arange(n_samples) / sample_rate
        since_beat = t - beat_times[np.searchsorted(beat_times, t, side="right") - 1]
        ducking = 1 - style.pump * np.exp(-since_beat / 0.12)
        buses["chords"] *= ducking
        buses["bass"] *= ducking
    if style.dub_delay:
        # dub echo on the chords: dotted-eighth repeats, each quieter
        delay = round(0.75 * 60.0 / sound.bpm * sample_rate)
        echoed = buses["chords"].copy()
        for repeat in range(1, 4):
            if delay * repeat >= n_samples:
                break  # a clip shorter than the echo
            echoed[delay * repeat :] += 0.45**repeat * buses["chords"][: n_samples - delay * repeat]
        buses["chords"] = echoed

    # mix: bus levels from the genre, each moved by up to +-4 dB per track
    mix = np.zeros(n_samples)
    for name, bus in buses.items():
        peak = np.abs(bus).max()
        if peak > 0:
            level_db = style.levels_db[name] + rng.uniform(-4, 4)
            mix += bus / peak * 10 ** (level_db / 20)

    # master: reverb, tone, crackle and hiss
    reverb_s = rng.uniform(*style.reverb_s)
    wet = rng.uniform(*style.reverb_wet)
    tail_t = np.arange(round(reverb_s * sample_rate)) / sample_rate
    impulse = rng.standard_normal(tail_t.size) * np.exp(-6.9 * tail_t / reverb_s)
    impulse = synth.lowpass(impulse, 5000.0)
    impulse /= np.sqrt(np.sum(impulse**2))
    reverberated = signal.fftconvolve(mix, impulse)[:n_samples]
    mix = (1 - wet) * mix + wet * reverberated * (
        np.abs(mix).max() / max(np.abs(reverberated).max(), 1e-9)
    )
    mix = synth.lowpass(mix, rng.uniform(*style.lowpass_hz))
    # mastering differs from record to record: tilt the spectrum brighter or darker around 1 kHz
    tilt = rng.uniform(-0.5, 1.0)
    mix = mix + tilt * (mix - synth.lowpass(mix, 1000.0))
    mix /= max(np.abs(mix).max(), 1e-9)
    if style.crackle:
        clicks = (rng.random(n_samples) < 8.0 / sample_rate) * rng.uniform(-0.3, 0.3, n_samples)
        mix += synth._highpass(clicks, 1500.0)
    mix += 10 ** (rng.uniform(*style.noise_db) / 20) * rng.standard_normal(n_samples)
    peak_db = rng.uniform(-6.0, -1.0)
    mix *= 10 ** (peak_db / 20) / max(np.abs(mix).max(), 1e-9)
    return mix.astype(np.float32)


# ==============================================================================================
# Writing


def _check_output_dir(root: Path) -> None:
    """Refuse to write over anything that is not an earlier demo data set (a real GTZAN copy
    has a genres_original/ folder too), and clear an earlier demo set so no stale file stays."""
    if root.exists() and not root.is_dir():
        raise DemoDataError(f"out_dir={root} exists and is not a folder")
    existing = [name for name in _GENERATED_ITEMS if (root / name).exists()]
    if not existing:
        return
    if not (root / MARKER_FILE).is_file():
        raise DemoDataError(
            f"out_dir={root} already holds {', '.join(existing)} that the demo generator did not "
            "write; choose an empty or new folder"
        )
    for name in existing:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _lrc_text(
    plan: DemoTrack, sung_lines: tuple[str, ...], duration_s: float, rng: np.random.Generator
) -> str:
    """LRC lyrics: `[ar:]`/`[ti:]` header, then one `[mm:ss.xx]` time tag per sung line,
    spread over the clip."""
    first = rng.uniform(0.5, 2.0) * duration_s / 30.0
    spacing = (duration_s - first) / (len(sung_lines) + 0.5)
    lines = [f"[ar:{plan.artist}]", f"[ti:{plan.title}]"]
    for index, line in enumerate(sung_lines):
        seconds = first + index * spacing
        minutes, rest = divmod(seconds, 60.0)
        lines.append(f"[{int(minutes):02d}:{rest:05.2f}]{line}")
    return "\n".join(lines) + "\n"


def generate_demo_dataset(
    out_dir: str | Path,
    *,
    tracks: int = 120,
    seed: int = 0,
    sample_rate: int = 22050,
    duration_s: float = 30.0,
) -> DemoDataset:
    """Write the demo collection (audio, lyrics, metadata and pairing truth) under `out_dir`.

    Args:
        out_dir: folder to write into; created if missing. A folder that already holds a demo
            set (it has `demo_dataset.json`) is regenerated in place.
        tracks: number of audio tracks (genres rotate, so any count is balanced to within one).
        seed: same seed -> byte-identical files; track k is the same for any `tracks` > k.
        sample_rate: Hz of the WAV files.
        duration_s: length of each clip in seconds.

    Returns:
        A `DemoDataset` describing what was written.

    Raises:
        DemoDataError: if `tracks` < 1, `sample_rate` < 8000, `duration_s` <= 0, or `out_dir`
            holds data the generator did not write.
    """
    if sample_rate < 8000:
        raise DemoDataError(f"sample_rate={sample_rate} must be at least 8000 Hz")
    if not duration_s > 0:
        raise DemoDataError(f"duration_s={duration_s} must be positive")
    plans = plan_demo_tracks(tracks, seed)
    root = Path(out_dir).expanduser().resolve()
    _check_output_dir(root)
    lyrics_dir = root / "lyrics"
    lyrics_dir.mkdir(parents=True, exist_ok=True)
    truth_rows: list[dict[str, str | None]] = []

    for plan in plans:
        genre_dir = root / "genres_original" / plan.genre
        genre_dir.mkdir(parents=True, exist_ok=True)
        audio = synthesize_track(
            plan.genre,
            _rng(seed, _STREAM_AUDIO, plan.index),
            sample_rate=sample_rate,
            duration_s=duration_s,
        )
        sf.write(genre_dir / f"{plan.track_id}.wav", audio, sample_rate, subtype="PCM_16")
        if plan.lyrics_file is None:
            continue
        lyrics_rng = _rng(seed, _STREAM_LYRICS, plan.index)
        is_lrc = plan.lyrics_style == "track_lrc"
        lyrics = compose_lyrics(
            plan.genre,
            plan.language,
            plan.script,
            plan.code_mixed,
            lyrics_rng,
            section_tags=not is_lrc and lyrics_rng.random() < 0.6,
        )
        text = (
            _lrc_text(plan, lyrics.sung_lines, duration_s, lyrics_rng)
            if is_lrc
            else "\n".join(lyrics.lines) + "\n"
        )
        (lyrics_dir / plan.lyrics_file).write_text(text, encoding="utf-8")
        truth_rows.append({"lyrics_file": plan.lyrics_file, "track_id": plan.track_id})

    orphan_rng = _rng(seed, _STREAM_ORPHANS)
    for language, artist, title in orphan_songs(orphan_rng):
        script = SCRIPT_OF_LANGUAGE[language]
        stem = (
            f"{artist.bengali} - {title.bengali}"
            if artist.bengali
            else f"{artist.latin} - {title.latin}"
        )
        name = f"{_safe_file_stem(stem)}.txt"
        lyrics = compose_lyrics(
            GENRES[int(orphan_rng.integers(len(GENRES)))],
            language,
            script,
            False,
            orphan_rng,
            section_tags=True,
        )
        (lyrics_dir / name).write_text("\n".join(lyrics.lines) + "\n", encoding="utf-8")
        truth_rows.append({"lyrics_file": name, "track_id": None})

    metadata = pl.DataFrame(
        {
            "track_id": [plan.track_id for plan in plans],
            "title": [plan.title for plan in plans],
            "artist": [plan.artist for plan in plans],
            "genre": [plan.genre for plan in plans],
            "language": [plan.language for plan in plans],
            "script": [plan.script for plan in plans],
            "romanized": [plan.romanized for plan in plans],
            "code_mixed": [plan.code_mixed for plan in plans],
            "has_lyrics": [plan.has_lyrics for plan in plans],
        },
        schema={
            name: (pl.Boolean if name in ("romanized", "code_mixed", "has_lyrics") else pl.String)
            for name in METADATA_COLUMNS
        },
    )
    metadata.write_csv(root / "metadata.csv")
    pl.DataFrame(truth_rows, schema={"lyrics_file": pl.String, "track_id": pl.String}).sort(
        "lyrics_file"
    ).write_csv(root / "lyrics_truth.csv")

    dataset = DemoDataset(
        root=root,
        n_tracks=len(plans),
        genres=tuple(sorted({plan.genre for plan in plans})),
        languages=tuple(sorted({plan.language for plan in plans})),
        seed=seed,
        sample_rate=sample_rate,
        duration_s=duration_s,
    )
    marker = dataset.model_dump(mode="json") | {"generator": "tasks.demo_data", "root": None}
    (root / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return dataset


__all__ = [
    "GENRES",
    "LANGUAGES",
    "METADATA_COLUMNS",
    "DemoDataError",
    "DemoDataset",
    "DemoTrack",
    "generate_demo_dataset",
    "plan_demo_tracks",
    "synthesize_track",
]
