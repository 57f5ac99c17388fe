"""The sound engine of the demo data set: pitched notes, drum hits and filters.

`Synth` renders into float64 buffers of one track; it draws note phases, breath and drum noise
from the track's generator, so the same generator state always gives the same samples.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from tasks.demo.instruments import DrumKit, Instrument


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    """Frequency in Hz of a MIDI note number (69 = A4 = 440 Hz; fractions are cents apart)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


class Synth:
    """Renders notes and drum hits of one track into a float64 buffer [shape=(n_samples,)]."""

    # large enough that nearest-sample lookup is as clean as interpolation, and a power of two
    # so the phase wraps with a bit mask
    _TABLE_SIZE = 8192

    def __init__(self, sample_rate: int, n_samples: int, rng: np.random.Generator) -> None:
        self.sample_rate = sample_rate
        self.n_samples = n_samples
        self.rng = rng
        self._tables: dict[tuple[Instrument, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _wavetables(
        self, instrument: Instrument, max_hz: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dull single-cycle table, (bright - dull) and dull + (bright - dull), with no harmonic
        above 0.45 * sample_rate at `max_hz` (band-limited, so high notes do not alias)."""
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
            bright_minus_dull = bright_table - dull_table
            # the sum is taken once per table rather than once per sample of every note; the
            # same additions, so the same samples
            self._tables[key] = (dull_table, bright_minus_dull, dull_table + bright_minus_dull)
        return self._tables[key]

    def _envelope(self, instrument: Instrument, t: np.ndarray, gate: int) -> np.ndarray:
        """Attack, exponential decay towards `sustain`, release after `gate` samples; `t` holds
        the time of each sample of the note in seconds."""
        # in place, one buffer: the same operations in the same order as the formula
        # sustain + (1 - sustain) * exp(-max(t - attack, 0) / decay), so the same samples
        envelope = t - instrument.attack_s
        np.maximum(envelope, 0, out=envelope)
        np.negative(envelope, out=envelope)
        envelope /= max(instrument.decay_s, 1e-3)
        np.exp(envelope, out=envelope)
        envelope *= 1 - instrument.sustain
        envelope += instrument.sustain
        # the attack ramp min(1, t / attack) is exactly 1 from t = attack on, and 1 * x == x
        attack_s = max(instrument.attack_s, 1e-4)
        rising = int(np.searchsorted(t, attack_s, side="left"))
        envelope[:rising] *= np.minimum(1.0, t[:rising] / attack_s)
        if gate < t.size:
            release = t[gate:] - t[gate]
            np.negative(release, out=release)
            release /= max(instrument.release_s, 1e-3)
            envelope[gate:] *= np.exp(release, out=release)
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
        hz = float(midi_to_hz(midi))
        max_hz = hz
        if glide_from is None and instrument.vibrato_cents <= 0:
            cycles = hz * t + self.rng.random()  # steady pitch: the phase is a straight line
        else:
            frequency = np.full(length, hz)
            if glide_from is not None:
                frequency *= (float(midi_to_hz(glide_from)) / hz) ** np.exp(-t / 0.06)
            if instrument.vibrato_cents > 0:
                # vibrato fades in, as a singer's or violinist's does
                depth = instrument.vibrato_cents / 1200 * np.minimum(1.0, t / 0.3)
                frequency *= 2.0 ** (depth * np.sin(2 * np.pi * instrument.vibrato_hz * t))
            cycles = np.cumsum(frequency) / self.sample_rate + self.rng.random()
            max_hz = float(frequency.max())
        envelope = self._envelope(instrument, t, gate) * velocity
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
        dull, bright_minus_dull, unplucked = self._wavetables(instrument, max_hz)
        index = (cycles * self._TABLE_SIZE).astype(np.int64) & (self._TABLE_SIZE - 1)
        if instrument.pluck <= 0:
            return unplucked[index]
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
            band = self.bandpass(noise, kit.snare_band_hz * 0.5, min(kit.snare_band_hz * 2, 10000))
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
            high = self.highpass(noise, kit.hat_cutoff_hz * (0.6 if voice == "crash" else 1.0))
            high /= np.abs(high).max()
            decay = {"hat": kit.hat_decay_s, "open_hat": 0.25, "crash": 0.9}[voice]
            return high * np.exp(-t / decay)
        if voice == "ride":
            # inharmonic square-ish partials give the metallic ring of a cymbal
            partials = 420 * np.array([1.0, 1.48, 1.95, 2.63, 3.3, 4.14])
            metal = np.sign(np.sin(2 * np.pi * np.outer(partials, t))).mean(axis=0)
            high = self.highpass(noise, 6000)
            return (0.5 * metal + 0.6 * high / np.abs(high).max()) * np.exp(-t / 0.5)
        # hand drums (khol, dhol) and timpani: a pitched membrane that bends down after the hit
        base = {"tom_low": kit.tom_hz, "tom_high": kit.tom_hz * 2.4, "timpani": kit.tom_hz}[voice]
        decay = kit.tom_decay_s * (0.6 if voice == "tom_high" else 1.0)
        if voice == "timpani":
            decay = 0.9
        pitch = base * (1 + 0.3 * np.exp(-t / 0.04))
        cycles = np.cumsum(pitch) / sr
        body = np.sin(2 * np.pi * cycles) + 0.4 * np.sin(2 * np.pi * 1.5 * cycles)
        slap = self.highpass(noise, 2500) * np.exp(-t / 0.01)
        return body * np.exp(-t / decay) + 0.2 * slap / max(np.abs(slap).max(), 1e-9)

    def lowpass(self, x: np.ndarray, cutoff_hz: float) -> np.ndarray:
        """`x` through a 2nd-order Butterworth low-pass [same shape as `x`]."""
        return self._butterworth(x, "lowpass", cutoff_hz)

    def highpass(self, x: np.ndarray, cutoff_hz: float) -> np.ndarray:
        """`x` through a 2nd-order Butterworth high-pass [same shape as `x`]."""
        return self._butterworth(x, "highpass", cutoff_hz)

    def bandpass(self, x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
        """`x` through a 2nd-order Butterworth band-pass [same shape as `x`]."""
        return self._butterworth(x, "bandpass", low_hz, high_hz)

    def _butterworth(self, x: np.ndarray, kind: str, *edges_hz: float) -> np.ndarray:
        nyquist = self.sample_rate / 2
        # scipy needs edges below Nyquist; at low sample rates a bright cutoff is held just under
        normalized = [min(edge_hz / nyquist, 0.95) for edge_hz in edges_hz]
        sos = signal.butter(
            2, normalized if len(normalized) > 1 else normalized[0], kind, output="sos"
        )
        return signal.sosfilt(sos, x)
