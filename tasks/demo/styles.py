"""How each demo genre sounds: tempo, grooves, harmony, instruments, mix and lyric languages.

A `GenreStyle` gives ranges and choices; each track draws its own values from them (see
`tasks.demo.track_sound`), so tracks of one genre differ and genres overlap the way real ones do.
"""

from __future__ import annotations

import dataclasses

from tasks.demo.instruments import (
    BELL,
    CELLO,
    DUSTY_PIANO,
    EKTARA,
    GUITAR,
    HARMONIUM,
    LEAD_GUITAR,
    METAL_GUITAR,
    ORGAN,
    RHODES,
    ROCK_BASS,
    SAX,
    SQUARE_LEAD,
    STRINGS,
    SUB_BASS,
    SUPERSAW,
    SYNTH_BASS,
    UPRIGHT_BASS,
    VIOLIN,
    VOICE,
    DrumKit,
    Instrument,
)


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
        chord_instrument=GUITAR, chord_rhythms=("x.x.x.x.x.x.x.x.", "x..x..x.x..x..x."),
        chord_steps=2, chord_octave=48, arpeggio=False,
        bass_instrument=ROCK_BASS, bass_patterns=("R.R.R.R.R.R.R.R.", "R.R.R.R.5.5.O.R."),
        bass_steps=2, melody_instrument=LEAD_GUITAR, melody_octave=64,
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
        chord_instrument=METAL_GUITAR, chord_rhythms=("xxxxxxxxxxxxxxxx", "x.xxx.xxx.xxx.xx"),
        chord_steps=1, chord_octave=40, arpeggio=False,
        bass_instrument=ROCK_BASS, bass_patterns=("RRRRRRRRRRRRRRRR", "R.RRR.RRR.RRR.RR"),
        bass_steps=1, melody_instrument=LEAD_GUITAR, melody_octave=67,
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
        chord_instrument=SUPERSAW, chord_rhythms=("x...............", "x.......x......."),
        chord_steps=8, chord_octave=55, arpeggio=False,
        bass_instrument=SYNTH_BASS, bass_patterns=("..R...R...R...R.", "R.RRR.RRR.RRR.RR"),
        bass_steps=1, melody_instrument=SQUARE_LEAD, melody_octave=72,
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
        chord_instrument=DUSTY_PIANO, chord_rhythms=("x.....x...x.....", "x.......x.x....."),
        chord_steps=4, chord_octave=55, arpeggio=False,
        bass_instrument=SUB_BASS, bass_patterns=("R.........R..R..", "R.......R.....5."),
        bass_steps=6, melody_instrument=BELL, melody_octave=72,
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
        chord_instrument=RHODES, chord_rhythms=("..x.....x...", "x....x..x...", ".....x....x."),
        chord_steps=3, chord_octave=55, arpeggio=False,
        bass_instrument=UPRIGHT_BASS, bass_patterns=("W..W..W..W..",), bass_steps=3,
        melody_instrument=SAX, melody_octave=62, melody_notes_per_bar=(3, 8),
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
        chord_instrument=ORGAN, chord_rhythms=("....x.......x...", "..x...x...x...x."),
        chord_steps=1, chord_octave=60, arpeggio=False,
        bass_instrument=SUB_BASS, bass_patterns=("..R..R.5R....R..", "R..R..5...R.O..."),
        bass_steps=2, melody_instrument=ORGAN, melody_octave=67,
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
        chord_instrument=STRINGS, chord_rhythms=("x.x.x.x.x.x.x.x.", "x..............."),
        chord_steps=16, chord_octave=52, arpeggio=True,
        bass_instrument=CELLO, bass_patterns=("R.......5.......", "R..............."),
        bass_steps=8, melody_instrument=VIOLIN, melody_octave=69,
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
        chord_instrument=HARMONIUM, chord_rhythms=("x...........", "x.....x....."),
        chord_steps=6, chord_octave=55, arpeggio=False,
        bass_instrument=EKTARA, bass_patterns=("R..R..R..R..", "R.RR.RR.RR.R"), bass_steps=1,
        melody_instrument=VOICE, melody_octave=62, melody_notes_per_bar=(3, 7),
        melody_mode="pentatonic",
        levels_db={"drums": -3, "bass": -5, "chords": -9, "melody": -2},
        reverb_wet=(0.1, 0.25), reverb_s=(0.6, 1.2), lowpass_hz=(5000, 8500),
        noise_db=(-55, -40), timing_jitter_s=0.015,
        language_weights={"bn": 0.85, "hi": 0.08, "en": 0.07}, drone=True, rubato=0.02,
    ),
}  # fmt: skip
"""Sound of each genre; keys equal `GENRES`."""


GENRES: tuple[str, ...] = tuple(sorted(STYLES))
"""The demo genres: baul, classical, electronic, hiphop, jazz, metal, reggae, rock."""
