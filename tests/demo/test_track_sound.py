"""What a track draws from its genre: varied timbres within bounds, borrowed parts, grooves."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.demo import GENRES
from tasks.demo.instruments import SUB_BASS, DrumKit, Instrument
from tasks.demo.styles import STYLES
from tasks.demo.track_sound import INSTRUMENT_SPREADS, choose_sound, vary


def test_varied_instrument_stays_within_its_spread_and_keeps_the_rest() -> None:
    preset = Instrument(rolloff=1.0, sustain=0.95, attack_s=0.01, drive=2.0, harmonics=9)
    for seed in range(50):
        varied = vary(preset, INSTRUMENT_SPREADS, np.random.default_rng(seed))
        assert varied.harmonics == 9
        assert varied.release_s == preset.release_s
        assert 1 / 1.25 <= varied.rolloff <= 1.25
        assert 0.01 / 1.4 <= varied.attack_s <= 0.01 * 1.4
        assert varied.sustain <= 1.0  # a sustain level never exceeds the peak
        assert varied.drive > 0


def test_clean_instrument_stays_clean_and_glide_is_kept() -> None:
    varied = vary(SUB_BASS, INSTRUMENT_SPREADS, np.random.default_rng(0))
    assert varied.glides
    clean = vary(Instrument(drive=0.0), INSTRUMENT_SPREADS, np.random.default_rng(0))
    assert clean.drive == 0.0


def test_varied_kit_keeps_its_level_and_hats_below_the_ceiling() -> None:
    kit = DrumKit(hat_cutoff_hz=9400.0, level=0.7)
    for seed in range(50):
        sound = vary(kit, {"hat_cutoff_hz": 0.2}, np.random.default_rng(seed))
        assert sound.level == 0.7
        assert sound.hat_cutoff_hz <= 9500.0


@pytest.mark.parametrize("genre", GENRES)
def test_grooves_fit_the_genre_grid(genre: str) -> None:
    steps_per_bar = 4 * STYLES[genre].steps_per_beat
    for seed in range(10):
        sound = choose_sound(genre, np.random.default_rng(seed))
        assert sound.steps_per_bar == steps_per_bar
        assert len(sound.chord_rhythm) == len(sound.bass_pattern) == steps_per_bar
        assert all(len(pattern) == steps_per_bar for pattern in sound.drums.values())


def test_some_tracks_borrow_a_part_from_another_genre() -> None:
    sounds = [choose_sound("rock", np.random.default_rng(seed)) for seed in range(60)]
    rock = STYLES["rock"]
    borrowed = [
        sound
        for sound in sounds
        if rock not in (sound.chord_style, sound.bass_style, sound.melody_style)
        or not rock.tempo_bpm[0] <= sound.bpm <= rock.tempo_bpm[1]
    ]
    assert 0 < len(borrowed) < len(sounds) / 2
