"""Synthesising one demo track: the track's choices, a timeline, four parts, a mix, a master.

Audio is synthesised, not sampled: every genre has a tempo range, drum patterns and drum sounds,
instrument timbres (additive wavetables, FM), a scale or mode, chord progressions and rhythms, a
bass line style, and effects (distortion, reverb, dub delay, side-chain pumping, tone, vinyl
crackle); see `tasks.demo.styles`. Each track draws its own key, tempo, pattern mutations,
timbre (`tasks.demo.track_sound`), mix settings and noise, then renders drums, chords, bass and
melody on their own buses (`tasks.demo.synth`), mixes and masters them.

One generator feeds every draw, in a fixed order: equal generator states give equal audio, and
reordering the steps below changes the audio of every seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
from scipy import signal

from tasks.demo.errors import DemoDataError
from tasks.demo.instruments import DRONE
from tasks.demo.styles import GENRES, MELODY_SUBSETS, STYLES, GenreStyle
from tasks.demo.synth import Synth
from tasks.demo.track_sound import INSTRUMENT_SPREADS, TrackSound, choose_sound, vary


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
    sound = choose_sound(genre, rng)
    synth = Synth(sample_rate, round(duration_s * sample_rate), rng)
    timeline = _Timeline.lay_out(sound, style, duration_s, rng)

    drums = _render_drums(synth, sound, timeline)
    chords = _render_chords(synth, sound, timeline)
    bass_tonic = _bass_tonic(sound.key_pitch_class)
    bass = _render_bass(synth, sound, timeline, bass_tonic)
    if style.drone:
        # the ektara/tanpura drone: tonic and fifth for the whole clip
        for midi in (bass_tonic + 12, bass_tonic + 19):
            synth.note(chords, 0.0, duration_s, midi, DRONE, 0.35)
    melody = _render_melody(synth, sound, timeline, glides=genre == "baul")

    if style.pump > 0:
        ducking = _beat_ducking(style.pump, sound.bpm, duration_s, sample_rate, synth.n_samples)
        chords, bass = chords * ducking, bass * ducking
    if style.dub_delay:
        chords = _dub_echo(chords, sound.bpm, sample_rate)
    # the order of the buses is the order of their level draws
    buses = {"drums": drums, "bass": bass, "chords": chords, "melody": melody}
    return _master(_mix(buses, style.levels_db, rng), style, synth, rng)


@dataclasses.dataclass(frozen=True)
class _Timeline:
    """When each grid step of one track sounds.

    `starts` holds the onset of every grid step in seconds [shape=((n_bars + 2) * steps_per_bar
    + 1,)]: two bars beyond `n_bars`, as a two-bar motif may start in the last bar.
    """

    n_bars: int
    steps_per_bar: int
    step_s: float
    starts: np.ndarray
    jitter_s: float
    rng: np.random.Generator

    @classmethod
    def lay_out(
        cls, sound: TrackSound, style: GenreStyle, duration_s: float, rng: np.random.Generator
    ) -> _Timeline:
        """Enough bars to fill `duration_s` even when rubato plays every bar at its fastest,
        plus one."""
        bar_s = 60.0 / sound.bpm * 4
        n_bars = math.ceil(duration_s / (bar_s * math.exp(-3 * style.rubato))) + 1
        return cls(
            n_bars=n_bars,
            steps_per_bar=sound.steps_per_bar,
            step_s=60.0 / sound.bpm / sound.steps_per_beat,
            starts=_step_times(sound, style.rubato, n_bars + 2, rng),
            jitter_s=style.timing_jitter_s,
            rng=rng,
        )

    def onset(self, step: int) -> float:
        """Onset of grid step `step` in seconds, with this hit's own human timing error."""
        error = self.rng.normal(0, self.jitter_s) if self.jitter_s else 0.0
        return float(self.starts[step] + error)


def _step_times(
    sound: TrackSound, rubato: float, n_bars: int, rng: np.random.Generator
) -> np.ndarray:
    """Onset time in seconds of every grid step [shape=(n_bars * steps_per_bar + 1,)], with
    swing on off-steps and (for rubato genres) each bar a little faster or slower."""
    step_s = 60.0 / sound.bpm / sound.steps_per_beat
    # bars vary independently around the tempo, so the clip never drifts far from it
    bar_factor = np.exp(np.clip(rng.normal(0, rubato, n_bars), -2.5 * rubato, 2.5 * rubato))
    durations = np.repeat(bar_factor, sound.steps_per_bar) * step_s
    starts = np.concatenate([[0.0], np.cumsum(durations)])
    if sound.swing > 0 and sound.steps_per_beat == 4:
        # off-beat sixteenths are late by `swing` of a step and the next step keeps its place
        off = np.arange(1, starts.size - 1, 2)
        starts[off] += sound.swing * durations[off]
    return starts


def _velocity(char: str) -> float:
    """Loudness of a pattern step: `X` accent 1, `x` 0.8, `o` ghost 0.4, anything else silent."""
    return {"X": 1.0, "x": 0.8, "o": 0.4}.get(char, 0.0)


def _scale_midi(root_midi: int, mode: tuple[int, ...], degree: int) -> int:
    """MIDI note of a scale degree above `root_midi` (negative or beyond 7: octaves wrap)."""
    octave, step = divmod(degree, len(mode))
    return root_midi + 12 * octave + mode[step]


def _chord_tones(sound: TrackSound, degree: int, octave_midi: int, sevenths: bool) -> list[int]:
    """MIDI notes of the triad (or seventh chord) on `degree`, voiced within the octave below
    and above `octave_midi - 6`."""
    tones = [
        _scale_midi(sound.key_pitch_class, sound.mode, degree + 2 * k)
        for k in range(4 if sevenths else 3)
    ]
    base = octave_midi - 6
    # voice the chord close to the instrument's register
    return [tone + 12 * math.ceil((base - tone) / 12) for tone in tones]


def _bass_tonic(key_pitch_class: int) -> int:
    """MIDI note of the key's tonic in the bass register, G#1 (32) to G2 (43)."""
    tonic = 36 + key_pitch_class % 12
    return tonic - 12 if tonic > 43 else tonic


# ----------------------------------------------------------------------------------------------
# Parts: each renders into a bus of its own [shape=(n_samples,), float64]


def _render_drums(synth: Synth, sound: TrackSound, timeline: _Timeline) -> np.ndarray:
    bus = np.zeros(synth.n_samples)
    for voice, pattern in sound.drums.items():
        hit = synth.drum_sound(voice, sound.kit)
        for bar in range(timeline.n_bars):
            for position, char in enumerate(pattern):
                velocity = _velocity(char)
                if voice in ("crash", "timpani") and bar % 4:
                    continue  # cymbal crashes and timpani rolls mark phrase starts only
                if velocity == 0:
                    continue
                onset_s = timeline.onset(bar * timeline.steps_per_bar + position)
                start = round(onset_s * synth.sample_rate)
                if 0 <= start < synth.n_samples:
                    end = min(synth.n_samples, start + hit.size)
                    scale = velocity * timeline.rng.uniform(0.85, 1.0)
                    bus[start:end] += scale * hit[: end - start]
    return bus * sound.kit.level


def _render_chords(synth: Synth, sound: TrackSound, timeline: _Timeline) -> np.ndarray:
    """One chord per bar from the progression, played in the chord rhythm (or broken into an
    arpeggio); a distorted instrument plays power chords through one amp."""
    bus = np.zeros(synth.n_samples)
    chord_style = sound.chord_style
    drive = sound.chord_instrument.drive
    # distortion acts on the whole chord (as an amp does), so notes are rendered clean
    instrument = dataclasses.replace(sound.chord_instrument, drive=0.0)
    steps_per_bar = timeline.steps_per_bar
    for bar in range(timeline.n_bars):
        degree = sound.progression[bar % len(sound.progression)]
        tones = _chord_tones(sound, degree, chord_style.chord_octave, chord_style.sevenths)
        if drive > 0:
            # distorted guitars play power chords: root, fifth and octave
            tones = [tones[0], tones[0] + 7, tones[0] + 12]
        for position, char in enumerate(sound.chord_rhythm):
            velocity = _velocity(char)
            if velocity == 0:
                continue
            step = bar * steps_per_bar + position
            length_s = min(chord_style.chord_steps, steps_per_bar - position) * timeline.step_s
            if chord_style.arpeggio:
                # broken chord: one tone per hit, cycling up the chord
                tone = tones[(position // 2) % len(tones)] + (12 if position >= 8 else 0)
                synth.note(bus, timeline.onset(step), length_s, tone, instrument, velocity)
                continue
            for tone in tones:
                loudness = velocity / len(tones) ** 0.5
                synth.note(bus, timeline.onset(step), length_s, tone, instrument, loudness)
    if drive > 0:
        bus = np.tanh(drive * bus / max(np.abs(bus).max(), 1e-9))
    return bus


def _render_bass(synth: Synth, sound: TrackSound, timeline: _Timeline, tonic: int) -> np.ndarray:
    """The bass pattern over each bar's chord; a gliding instrument (808) now and then slides
    in from the previous note."""
    bus = np.zeros(synth.n_samples)
    bass_style = sound.bass_style
    instrument = vary(bass_style.bass_instrument, INSTRUMENT_SPREADS, timeline.rng)
    length_s = bass_style.bass_steps * timeline.step_s
    previous: float | None = None
    for bar in range(timeline.n_bars):
        for position, midi in _bass_notes(sound, bar, tonic):
            glide = previous if instrument.glides and timeline.rng.random() < 0.3 else None
            onset_s = timeline.onset(bar * timeline.steps_per_bar + position)
            synth.note(bus, onset_s, length_s, midi, instrument, 0.9, glide_from=glide)
            previous = midi
    return bus


def _bass_notes(sound: TrackSound, bar: int, tonic: int) -> Iterator[tuple[int, int]]:
    """(step within the bar, MIDI note) of each bass note of `bar`, from the bass pattern:
    `R` root, `5` fifth, `O` octave, `W` walking (chord tones, then a chromatic approach into
    the next bar's root)."""
    degree = sound.progression[bar % len(sound.progression)]
    next_degree = sound.progression[(bar + 1) % len(sound.progression)]
    root = tonic + (_scale_midi(0, sound.mode, degree) % 12)
    target = tonic + (_scale_midi(0, sound.mode, next_degree) % 12)
    walk = 0
    for position, char in enumerate(sound.bass_pattern):
        if char == ".":
            continue
        if char == "W":
            beats_left = sound.bass_pattern[position + 1 :].count("W")
            chord = [_scale_midi(tonic, sound.mode, degree + step) for step in (0, 2, 4)]
            yield position, target - 1 if beats_left == 0 else chord[walk % 3]
            walk += 1
        else:
            yield position, root + {"R": 0, "5": 7, "O": 12}[char]


def _render_melody(
    synth: Synth, sound: TrackSound, timeline: _Timeline, *, glides: bool
) -> np.ndarray:
    """A two-bar motif repeated with variations, resting in some phrases; with `glides` (a baul
    singer) notes now and then slide in from the previous one."""
    bus = np.zeros(synth.n_samples)
    rng = timeline.rng
    melody_style = sound.melody_style
    mode = melody_style.melody_mode
    degrees = MELODY_SUBSETS[mode] if mode else tuple(range(7))
    instrument = vary(melody_style.melody_instrument, INSTRUMENT_SPREADS, rng)
    motif = _melody_motif(melody_style, len(degrees), timeline.steps_per_bar, rng)
    octave_midi = melody_style.melody_octave
    root = octave_midi - 6 + ((sound.key_pitch_class - octave_midi + 6) % 12)
    motif_steps = 2 * timeline.steps_per_bar
    last_midi: float | None = None
    for phrase in range(0, timeline.n_bars, 2):
        if rng.random() < 0.25:
            continue  # the melody rests for this phrase
        for index, (step, motif_index) in enumerate(motif):
            if rng.random() < 0.2:
                motif_index += int(rng.integers(-2, 3))
            octave, within = divmod(motif_index, len(degrees))
            midi = _scale_midi(root, sound.mode, degrees[within]) + 12 * octave
            following = motif[index + 1][0] if index + 1 < len(motif) else motif_steps
            length_s = max(1, following - step) * timeline.step_s * 0.9
            glide = last_midi if glides and rng.random() < 0.5 else None
            synth.note(
                bus,
                timeline.onset(phrase * timeline.steps_per_bar + step),
                length_s,
                midi,
                instrument,
                rng.uniform(0.6, 0.9),
                glide_from=glide,
            )
            last_midi = midi
    return bus


def _melody_motif(
    melody_style: GenreStyle, n_degrees: int, steps_per_bar: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """(step within two bars, index into the melody scale) of each motif note: a random walk of
    at most two scale steps per note, between 3 below the root and two octaves above."""
    low, high = melody_style.melody_notes_per_bar
    motif: list[tuple[int, int]] = []
    scale_index = int(rng.integers(0, n_degrees))
    for bar in range(2):
        count = int(rng.integers(low, high + 1))
        positions = np.sort(
            rng.choice(steps_per_bar, size=min(count, steps_per_bar), replace=False)
        )
        for position in positions:
            scale_index = int(np.clip(scale_index + rng.integers(-2, 3), -3, 2 * n_degrees))
            motif.append((bar * steps_per_bar + int(position), scale_index))
    return motif


# ----------------------------------------------------------------------------------------------
# Bus effects, mix and master


def _beat_ducking(
    depth: float, bpm: float, duration_s: float, sample_rate: int, n_samples: int
) -> np.ndarray:
    """Side-chain pumping gain [shape=(n_samples,)]: down by `depth` on every beat, under the
    kick, recovering with a 0.12 s time constant."""
    beat_times = np.arange(0, duration_s, 60.0 / bpm)
    t = np.arange(n_samples) / sample_rate
    since_beat = t - beat_times[np.searchsorted(beat_times, t, side="right") - 1]
    return 1 - depth * np.exp(-since_beat / 0.12)


def _dub_echo(bus: np.ndarray, bpm: float, sample_rate: int) -> np.ndarray:
    """`bus` with dub echoes: three dotted-eighth repeats, each 0.45 times the one before."""
    n_samples = bus.size
    delay = round(0.75 * 60.0 / bpm * sample_rate)
    echoed = bus.copy()
    for repeat in range(1, 4):
        if delay * repeat >= n_samples:
            break  # a clip shorter than the echo
        echoed[delay * repeat :] += 0.45**repeat * bus[: n_samples - delay * repeat]
    return echoed


def _mix(
    buses: dict[str, np.ndarray], levels_db: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Sum of the buses, each normalised to its peak and set to the genre's level moved by up
    to +-4 dB per track (a silent bus draws nothing)."""
    mix = np.zeros(next(iter(buses.values())).size)
    for name, bus in buses.items():
        peak = np.abs(bus).max()
        if peak > 0:
            level_db = levels_db[name] + rng.uniform(-4, 4)
            mix += bus / peak * 10 ** (level_db / 20)
    return mix


def _master(
    mix: np.ndarray, style: GenreStyle, synth: Synth, rng: np.random.Generator
) -> np.ndarray:
    """Reverb, tone, crackle and hiss, then a peak between -6 and -1 dBFS [float32]."""
    n_samples = mix.size
    mix = _reverberate(mix, style, synth, rng)
    mix = synth.lowpass(mix, rng.uniform(*style.lowpass_hz))
    # mastering differs from record to record: tilt the spectrum brighter or darker around 1 kHz
    tilt = rng.uniform(-0.5, 1.0)
    mix = mix + tilt * (mix - synth.lowpass(mix, 1000.0))
    mix /= max(np.abs(mix).max(), 1e-9)
    if style.crackle:
        clicks = (rng.random(n_samples) < 8.0 / synth.sample_rate) * rng.uniform(
            -0.3, 0.3, n_samples
        )
        mix += synth.highpass(clicks, 1500.0)
    mix += 10 ** (rng.uniform(*style.noise_db) / 20) * rng.standard_normal(n_samples)
    peak_db = rng.uniform(-6.0, -1.0)
    mix *= 10 ** (peak_db / 20) / max(np.abs(mix).max(), 1e-9)
    return mix.astype(np.float32)


def _reverberate(
    mix: np.ndarray, style: GenreStyle, synth: Synth, rng: np.random.Generator
) -> np.ndarray:
    """`mix` blended with itself convolved with a decaying noise tail (a room of the genre's
    size), the wet part scaled to the dry peak."""
    sample_rate = synth.sample_rate
    reverb_s = rng.uniform(*style.reverb_s)
    wet = rng.uniform(*style.reverb_wet)
    tail_t = np.arange(round(reverb_s * sample_rate)) / sample_rate
    impulse = rng.standard_normal(tail_t.size) * np.exp(-6.9 * tail_t / reverb_s)
    impulse = synth.lowpass(impulse, 5000.0)
    impulse /= np.sqrt(np.sum(impulse**2))
    reverberated = signal.fftconvolve(mix, impulse)[: mix.size]
    return (1 - wet) * mix + wet * reverberated * (
        np.abs(mix).max() / max(np.abs(reverberated).max(), 1e-9)
    )
