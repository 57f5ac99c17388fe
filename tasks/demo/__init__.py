"""The built-in demo data set: a small synthetic, hybrid-language GTZAN made from a seed.

The steps, one module each:

    plan.py         which genre, language, script, title, artist and lyrics file each track gets
    vocabulary.py   theme words of each genre in every lyric language
    song_names.py   titles and artist names
    lyrics.py       lyric lines, LRC and plain text, lyrics file names
    instruments.py  instrument and drum kit presets
    styles.py       how each genre sounds (tempo, grooves, harmony, instruments, mix)
    track_sound.py  what one track draws from its genre's style
    synth.py        the sound engine: notes, drum hits, filters
    synthesis.py    one track's audio: parts, mix and master
    writer.py       the files on disk (`generate_demo_dataset`)
    seeding.py      one random generator per purpose and track, so output is reproducible

Use `generate_demo_dataset(out_dir, tracks=..., seed=...)`.
"""

from tasks.demo.errors import DemoDataError
from tasks.demo.plan import DemoTrack, plan_demo_tracks
from tasks.demo.styles import GENRES
from tasks.demo.synthesis import synthesize_track
from tasks.demo.vocabulary import LANGUAGES
from tasks.demo.writer import METADATA_COLUMNS, DemoDataset, DemoSettings, generate_demo_dataset

__all__ = [
    "GENRES",
    "LANGUAGES",
    "METADATA_COLUMNS",
    "DemoDataError",
    "DemoDataset",
    "DemoSettings",
    "DemoTrack",
    "generate_demo_dataset",
    "plan_demo_tracks",
    "synthesize_track",
]
