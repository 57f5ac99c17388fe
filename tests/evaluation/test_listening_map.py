"""The listening map: a self-contained page, checked as a user meets it, in headless Chromium.

The browser is driven over the DevTools protocol with the `websockets` package the project
already has (no driver binary, no extra dependency): dots are hovered and clicked with real mouse
events at their place on the screen, so a dot hidden under another element would fail the test.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from websockets.sync.client import ClientConnection, connect

from tasks.evaluation.listening_map import audio_urls, embed_json, write_listening_map

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 30.0

# Titles in the scripts of the collection, and two that try to inject markup.
TRACKS = [
    ("t0", "আমার সোনার বাংলা", "রবীন্দ্রনাথ", "folk", "bn", 0, True, "গান ১.wav"),
    ("t1", "أغنية الليل", "فيروز", "folk", "ar", 0, False, "night #1.wav"),
    ("t2", "तुम ही हो", "अरिजीत", "pop", "hi", 0, False, "tum hi ho.wav"),
    ("t3", "<img src=x onerror=alert(1)>", "Mallory", "pop", "en", 1, True, "img.wav"),
    ("t4", "</script><b>bold</b>", None, "pop", None, 1, False, "bold?.wav"),
    ("t5", "Plain Song", "Ann", None, "en", 1, False, "plain.wav"),
]


def _write_wav(path: Path, *, seconds: float = 0.3, rate: int = 8000) -> None:
    """A real little mono 16-bit PCM tone the browser can decode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(frames)


def _points(music: Path) -> pl.DataFrame:
    rows = []
    for i, (track_id, title, artist, genre, language, cluster, typical, name) in enumerate(TRACKS):
        _write_wav(music / name)
        rows.append(
            {
                "track_id": track_id,
                "title": title,
                "artist": artist,
                "audio_path": str(music / name),
                "genre": genre,
                "language": language,
                "cluster": cluster,
                "typical": typical,
                "x": float(i % 3) + 5.0 * cluster,
                "y": float(i // 3) * 2.0 - cluster,
            }
        )
    return pl.DataFrame(rows)


# ------------------------------------------------------------------------------- without a browser


def test_audio_urls_are_relative_to_the_page_and_percent_encoded() -> None:
    relative, absolute = audio_urls("/music/live #1/গান ?.wav", Path("/work/reports"))

    assert relative == "../../music/live%20%231/%E0%A6%97%E0%A6%BE%E0%A6%A8%20%3F.wav"
    assert absolute == "file:///music/live%20%231/%E0%A6%97%E0%A6%BE%E0%A6%A8%20%3F.wav"


def test_audio_urls_reject_a_relative_audio_path() -> None:
    with pytest.raises(ValueError, match="absolute"):
        audio_urls("music/song.wav", Path("/work/reports"))


def test_embedded_json_cannot_close_its_script_element_and_round_trips() -> None:
    data = {"title": "</script><!-- & --> আমার"}

    embedded = embed_json(data)

    assert not {"<", ">", "&"} & set(embedded)
    assert json.loads(embedded) == data


def test_page_is_self_contained_utf8_and_shows_data_only_as_text(tmp_path: Path) -> None:
    page = write_listening_map(
        _points(tmp_path / "music"),
        tmp_path / "reports" / "map.html",
        title="Songs <&> গান __DATA__",
    )

    text = page.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in text
    assert "<title>Songs &lt;&amp;&gt; গান __DATA__</title>" in text  # text, not a slot
    # nothing to fetch from a network or from beside the page
    outside = [
        part for part in ("<link", "@import", "url(", "<script src", "https://") if part in text
    ]
    assert outside == []
    # a title that tries to close the data's <script> stays inside the JSON
    assert "</script><b>" not in text
    assert "<img src=x" not in text
    assert "আমার সোনার বাংলা" in text  # raw UTF-8, not mangled


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop("audio_path"), "audio_path"),
        (lambda frame: frame.with_columns(x=pl.lit(float("nan"))), "'x'"),
        (lambda frame: frame.with_columns(y=pl.lit(None, dtype=pl.Float64)), "'y'"),
        (lambda frame: frame.clear(), "empty"),
    ],
)
def test_unusable_points_are_refused_with_the_column_named(
    tmp_path: Path, change: Any, message: str
) -> None:
    points = change(_points(tmp_path / "music"))

    with pytest.raises(ValueError, match=message):
        write_listening_map(points, tmp_path / "map.html", title="map")


# ---------------------------------------------------------------------------------- the browser


class HeadlessChromium:
    """One page of a headless Chromium, driven over the DevTools protocol (a flat session)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",  # containers (and root) have no user namespaces for the sandbox
                "--disable-gpu",
                "--mute-audio",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port, browser_path = self._devtools_address(profile / "DevToolsActivePort")
        self.socket: ClientConnection = connect(
            f"ws://127.0.0.1:{port}{browser_path}", max_size=None, open_timeout=TIMEOUT_S
        )
        self.next_id = 0
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=860,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _devtools_address(self, port_file: Path) -> tuple[str, str]:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {self.process.returncode}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return lines[0], lines[1]
            time.sleep(0.05)
        raise TimeoutError(f"Chromium wrote no {port_file} within {TIMEOUT_S} s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv(timeout=TIMEOUT_S))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT_S
        while not any(event.get("method") == "Page.loadEventFired" for event in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load within {TIMEOUT_S} s")
            self.events.append(json.loads(self.socket.recv(timeout=TIMEOUT_S)))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        """Poll `expression` until it is truthy; its last value either way."""
        deadline = time.monotonic() + TIMEOUT_S / 3
        value = self.evaluate(expression)
        while not value and time.monotonic() < deadline:
            time.sleep(0.1)
            value = self.evaluate(expression)
        return value

    def centre_of(self, selector: str) -> tuple[float, float]:
        x, y = self.evaluate(
            f"(() => {{ const node = document.querySelector({json.dumps(selector)});"
            " node.scrollIntoView({block: 'nearest'});"
            " const box = node.getBoundingClientRect();"
            " return [box.x + box.width / 2, box.y + box.height / 2]; })()"
        )
        return x, y

    def hover(self, selector: str) -> None:
        x, y = self.centre_of(selector)
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def click(self, selector: str) -> None:
        x, y = self.centre_of(selector)
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and browser-logged errors so far."""
        self.evaluate("0")  # a round trip, so that events sent before it have arrived
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(json.dumps(params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def chromium_binary() -> str:
    """Chromium's path; a skip where it is missing, but a failure in CI (CI=true)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    reason = "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires the browser test to run")
    pytest.skip(reason)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), (None, pytest.skip.Exception)]
)
def test_a_missing_chromium_skips_locally_but_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)

    with pytest.raises(outcome, match="Chromium is not installed"):
        chromium_binary()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadlessChromium]:
    chromium = HeadlessChromium(chromium_binary(), tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the map page, the music folder): the page in workdir/reports, the music beside workdir."""
    root = tmp_path_factory.mktemp("collection")
    music = root / "music"
    page = write_listening_map(
        _points(music), root / "workdir" / "reports" / "listening_map.html", title="Songs map"
    )
    return page, music


@pytest.fixture
def opened(browser: HeadlessChromium, collection: tuple[Path, Path]) -> HeadlessChromium:
    browser.open(collection[0].as_uri())
    return browser


@pytest.mark.browser
def test_map_loads_without_console_errors_and_draws_one_dot_per_track(
    opened: HeadlessChromium,
) -> None:
    assert opened.evaluate("document.querySelectorAll('#points circle.point').length") == len(
        TRACKS
    )
    assert opened.evaluate("document.querySelectorAll('#cluster-list button').length") == len(
        TRACKS
    )
    assert opened.evaluate("document.querySelectorAll('img, b').length") == 0  # no injected HTML
    assert opened.console_errors() == []


@pytest.mark.browser
def test_switching_the_colouring_to_genre_recolours_the_dots_and_the_legend(
    opened: HeadlessChromium,
) -> None:
    fill = "[...document.querySelectorAll('#points circle')].map(c => c.getAttribute('fill'))"
    by_cluster = opened.evaluate(fill)
    assert by_cluster[0] == by_cluster[1] == by_cluster[2] != by_cluster[3]  # clusters 0 | 1

    opened.click("#colour-genre input")

    by_genre = opened.evaluate(fill)
    assert opened.evaluate("document.body.dataset.colour") == "genre"
    assert by_genre[0] == by_genre[1] != by_genre[2] == by_genre[3] == by_genre[4]  # folk | pop
    assert by_genre[5] not in (by_genre[0], by_genre[2])  # unknown genre: its own grey
    legend = opened.evaluate("document.getElementById('legend').textContent")
    assert legend.startswith("Colour = genre")
    for entry in ("folk (2)", "pop (3)", "unknown (1)"):
        assert entry in legend
    assert opened.console_errors() == []


@pytest.mark.browser
def test_the_tooltip_names_the_track_in_its_own_script_and_shows_markup_as_text(
    opened: HeadlessChromium,
) -> None:
    opened.hover("#points circle[data-index='0']")

    tooltip = opened.evaluate(
        "(() => { const t = document.getElementById('tooltip');"
        " return t.hidden ? null : t.innerText; })()"
    )
    assert tooltip is not None
    for line in ("আমার সোনার বাংলা", "রবীন্দ্রনাথ", "language: bn", "cluster 0 (typical)"):
        assert line in tooltip

    opened.hover("#points circle[data-index='3']")

    tooltip = opened.evaluate("document.getElementById('tooltip').innerText")
    assert "<img src=x onerror=alert(1)>" in tooltip
    assert opened.evaluate("document.querySelectorAll('img').length") == 0


@pytest.mark.browser
def test_clicking_a_dot_plays_that_tracks_file(
    opened: HeadlessChromium, collection: tuple[Path, Path]
) -> None:
    _, music = collection

    opened.click("#points circle[data-index='1']")  # "night #1.wav": a name that needs escaping

    assert opened.evaluate("document.getElementById('player').src") == (
        (music / "night #1.wav").as_uri()
    )
    # the browser really found and decoded the file (0.3 s long)
    duration = opened.wait_for("document.getElementById('player').duration || 0")
    assert duration == pytest.approx(0.3, abs=0.05)
    assert "أغنية الليل" in opened.evaluate("document.getElementById('now-playing').textContent")
    assert opened.console_errors() == []


@pytest.mark.browser
def test_clicking_a_title_in_the_cluster_list_plays_it(
    opened: HeadlessChromium, collection: tuple[Path, Path]
) -> None:
    _, music = collection

    opened.click("#cluster-list button[data-index='0']")

    assert opened.evaluate("document.getElementById('player').src") == (music / "গান ১.wav").as_uri()
    assert opened.wait_for("document.getElementById('player').duration || 0") > 0
    assert opened.evaluate("document.querySelector('circle.playing').dataset.index") == "0"


@pytest.mark.browser
def test_a_page_copied_away_from_its_music_plays_from_the_files_own_place(
    browser: HeadlessChromium, collection: tuple[Path, Path], tmp_path: Path
) -> None:
    page, music = collection
    copied = tmp_path / "elsewhere" / "deeper" / "listening_map.html"
    copied.parent.mkdir(parents=True)
    shutil.copy(page, copied)
    browser.open(copied.as_uri())

    browser.click("#points circle[data-index='5']")

    expected = (music / "plain.wav").as_uri()
    assert browser.wait_for(f"document.getElementById('player').src === {json.dumps(expected)}")
    assert browser.wait_for("document.getElementById('player').duration || 0") > 0
    assert browser.evaluate("document.getElementById('status').textContent") == ""
