"""A map of the collection you can listen to: one self-contained HTML page per champion.

The page is written for a music-library user, not for a data scientist: every dot is a track
named by title and artist, and clicking it plays the file. It has to open from disk (file://)
with no server and no network, so everything is inline: the track table as JSON, a small
hand-written script that draws plain SVG (a few kB, where plotly.js would add ~5 MB), and the
style sheet. Data never becomes markup: the script writes every piece of text with
`textContent`, and the JSON is escaped so that no title can close its `<script>` element.

Audio sources are URLs relative to the page (so a workspace that moves together with its music
keeps playing), with the absolute file:// URI kept as a fallback the page switches to when the
relative one fails (so a report copied elsewhere on the same machine keeps playing too).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import polars as pl

from tasks.evaluation.plots import NOISE, UNKNOWN, category_colours

REQUIRED_COLUMNS = (
    "track_id",
    "title",
    "artist",
    "audio_path",
    "genre",
    "language",
    "cluster",
    "typical",
    "x",
    "y",
)
# The ways the page can colour the map, with the sentence its legend uses to explain each.
COLOURINGS = {
    "cluster": "the group the model put the track in",
    "genre": "the genre recorded for the track in the collection",
    "language": "the language recorded for the track's lyrics",
}
# Drawing area inside the SVG viewBox (which is 800 x 560): room on the left and below for the
# axis titles. The axes of a 2-D projection carry no unit, so there are no ticks.
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 48.0, 790.0, 12.0, 512.0
# Fraction of the data range left empty around the points so none sits on an axis.
PLOT_MARGIN = 0.04
NOISE_LABEL = "unclustered (noise)"


def write_listening_map(points: pl.DataFrame, path: Path, *, title: str) -> Path:
    """Write the listening map of a clustering as one self-contained HTML file.

    Args:
        points: one row per track, with the columns of ``REQUIRED_COLUMNS``: ``track_id``,
            ``title``, ``artist`` (text, may be null), ``audio_path`` (absolute path of the
            audio file), ``genre``, ``language`` (text, null when unknown), ``cluster`` (int,
            -1 = noise of a density-based clustering), ``typical`` (bool: the track is typical
            of its cluster rather than towards its edge), ``x``, ``y`` (float, the 2-D map
            coordinates in any unit). Within a cluster the side list keeps the order of the rows,
            so pass them sorted from the most typical track outwards.
        path: the HTML file to write (its folder is created). Audio sources are written
            relative to this folder, so choose it before writing.
        title: the page's heading (plain text; escaped).

    Returns:
        ``path``.

    Raises:
        ValueError: ``points`` is empty, lacks a column, or has a missing or non-finite ``x``,
            ``y`` or ``cluster``, or a missing ``audio_path``.
    """
    _check_points(points)
    path = Path(path)
    page_dir = path.parent.resolve()
    page_dir.mkdir(parents=True, exist_ok=True)
    data = _page_data(points, page_dir)
    parts = {
        "TITLE": html.escape(title),
        "STYLE": _STYLE,
        "DATA": embed_json(data),
        "SCRIPT": _SCRIPT,
    }
    # One pass, so that text from the data that happens to read "__SCRIPT__" stays text.
    page = re.sub(r"__(TITLE|STYLE|DATA|SCRIPT)__", lambda match: parts[match[1]], _PAGE)
    path.write_text(page, encoding="utf-8")
    return path


def _check_points(points: pl.DataFrame) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in points.columns]
    if missing:
        raise ValueError(
            f"listening map: points lack the column(s) {missing}; "
            f"expected all of {list(REQUIRED_COLUMNS)}"
        )
    if points.height == 0:
        raise ValueError("listening map: points is empty; there is no track to draw")
    for name in ("x", "y"):
        values = points[name].cast(pl.Float64, strict=False).to_list()
        if any(value is None or not math.isfinite(value) for value in values):
            raise ValueError(f"listening map: column {name!r} has missing or non-finite values")
    for name in ("cluster", "audio_path"):
        if points[name].null_count():
            raise ValueError(f"listening map: column {name!r} has missing values")


def audio_urls(audio_path: str | Path, page_dir: Path) -> tuple[str, str]:
    """The URLs a page in `page_dir` uses to play `audio_path`: (relative, absolute).

    Both are percent-encoded (spaces, ``#``, ``?`` and non-Latin letters are safe). The relative
    URL falls back to the absolute file:// URI where no relative path exists (another drive).

    Raises:
        ValueError: `audio_path` is not absolute.
    """
    audio = Path(audio_path)
    if not audio.is_absolute():
        raise ValueError(f"listening map: audio_path must be absolute, got {str(audio_path)!r}")
    absolute = audio.as_uri()
    try:
        relative = PurePosixPath(*Path(os.path.relpath(audio, page_dir)).parts)
    except ValueError:  # Windows: the audio is on another drive than the page
        return absolute, absolute
    return "/".join(quote(part, safe="") for part in relative.parts), absolute


def embed_json(data: Any) -> str:
    """`data` as JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no text (``</script>``, ``<!--``)
    can end the element or start markup; JSON.parse restores them exactly.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _text(value: Any, missing: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "":
        return missing
    return str(value)


def _cluster_label(cluster: int) -> str:
    return NOISE_LABEL if str(cluster) == NOISE else f"cluster {cluster}"


def _screen(values: list[float], low: float, high: float, *, flip: bool) -> list[float]:
    """Map data coordinates onto [low, high] of the viewBox, with PLOT_MARGIN on each side."""
    lowest, highest = min(values), max(values)
    span = highest - lowest
    if span == 0:
        return [round((low + high) / 2, 1)] * len(values)
    lowest, span = lowest - PLOT_MARGIN * span, span * (1 + 2 * PLOT_MARGIN)
    scaled = [(value - lowest) / span for value in values]
    return [round(high - s * (high - low) if flip else low + s * (high - low), 1) for s in scaled]


def _colouring(labels: list[str], explanation: str) -> dict[str, Any]:
    """Categories (most common first, unknown and noise last) with colours and counts, and each
    track's category as an index into them."""
    counts = Counter(labels)
    order = sorted(counts, key=lambda name: (name in (UNKNOWN, NOISE), -counts[name], name))
    colours = category_colours(order)
    index = {name: position for position, name in enumerate(order)}
    return {
        "explanation": explanation,
        "categories": [
            {"name": name, "colour": colours[name], "count": counts[name]} for name in order
        ],
        "values": [index[label] for label in labels],
    }


def _cluster_colouring(clusters: list[int]) -> dict[str, Any]:
    """Like `_colouring`, but clusters in numeric order, named ``cluster N``."""
    counts = Counter(clusters)
    order = sorted(counts, key=lambda cluster: (cluster == -1, cluster))
    colours = category_colours([str(cluster) for cluster in order])
    index = {cluster: position for position, cluster in enumerate(order)}
    return {
        "explanation": COLOURINGS["cluster"],
        "categories": [
            {
                "name": _cluster_label(cluster),
                "colour": colours[str(cluster)],
                "count": counts[cluster],
            }
            for cluster in order
        ],
        "values": [index[cluster] for cluster in clusters],
    }


def _page_data(points: pl.DataFrame, page_dir: Path) -> dict[str, Any]:
    """Everything the page's script needs, as plain JSON-able values."""
    rows = points.select(REQUIRED_COLUMNS).to_dicts()
    xs = _screen([float(row["x"]) for row in rows], PLOT_LEFT, PLOT_RIGHT, flip=False)
    ys = _screen([float(row["y"]) for row in rows], PLOT_TOP, PLOT_BOTTOM, flip=True)
    tracks = []
    for row, x, y in zip(rows, xs, ys, strict=True):
        relative, absolute = audio_urls(row["audio_path"], page_dir)
        tracks.append(
            {
                "id": _text(row["track_id"], ""),
                "title": _text(row["title"], Path(row["audio_path"]).stem),
                "artist": _text(row["artist"], "unknown artist"),
                "genre": _text(row["genre"], UNKNOWN),
                "language": _text(row["language"], UNKNOWN),
                "cluster": _cluster_label(int(row["cluster"])),
                "typical": bool(row["typical"]),
                "px": x,
                "py": y,
                "src": relative,
                "absolute": absolute,
                "path": str(row["audio_path"]),
            }
        )
    colourings = {"cluster": _cluster_colouring([int(row["cluster"]) for row in rows])}
    for key in ("genre", "language"):
        colourings[key] = _colouring([track[key] for track in tracks], COLOURINGS[key])
    return {"tracks": tracks, "colourings": colourings}


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <p class="how">Each dot is a track. Tracks close together sound alike to the model; a ringed
  dot is typical of its cluster. Point at a dot to see the song, click it (or a title in the list)
  to listen.</p>
  <div class="controls">
    <fieldset id="colour-switch"><legend>Colour the dots by</legend></fieldset>
    <div class="player">
      <audio id="player" controls preload="none"></audio>
      <div id="now-playing" dir="auto">Nothing playing yet.</div>
      <div id="status" role="status"></div>
    </div>
  </div>
</header>
<main>
  <section class="map-panel">
    <svg id="map" viewBox="0 0 800 560" role="img"
         aria-label="2-D map of the collection, one dot per track">
      <path class="axis" d="M48 12 V512 H790"></path>
      <text class="axis-title" x="419" y="544" text-anchor="middle">map axis 1 →
        (a 2-D projection of what the model learned; the axes have no unit)</text>
      <text class="axis-title" transform="translate(22 262) rotate(-90)"
        text-anchor="middle">map axis 2 →</text>
      <g id="points"></g>
    </svg>
    <div id="legend" aria-live="polite"></div>
  </section>
  <aside>
    <h2>Tracks by cluster</h2>
    <p class="how">★ typical of its cluster. Click a title to listen.</p>
    <div id="cluster-list"></div>
  </aside>
</main>
<div id="tooltip" role="tooltip" hidden></div>
<script type="application/json" id="map-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
:root { font-family: system-ui, "Noto Sans", "Noto Sans Bengali", "Noto Sans Arabic",
  "Noto Sans Devanagari", sans-serif; color: #222; background: #fafafa; }
body { margin: 0; }
header { padding: 12px 20px 4px; }
h1 { font-size: 1.4rem; margin: 0 0 4px; }
h2 { font-size: 1.05rem; margin: 0 0 4px; }
.how { margin: 0 0 8px; color: #555; font-size: 0.9rem; max-width: 70em; }
.controls { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; }
fieldset { border: 1px solid #ccc; border-radius: 6px; padding: 4px 10px; }
fieldset label { margin-right: 12px; cursor: pointer; }
.player { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; }
#now-playing { font-weight: 600; }
#status { color: #a01818; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 16px;
  padding: 0 20px 20px; }
.map-panel { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px;
  align-self: start; }
#map { width: 100%; height: auto; display: block; }
.axis { fill: none; stroke: #888; stroke-width: 1; }
.axis-title { font-size: 13px; fill: #555; }
.point { stroke: #fff; stroke-width: 0.7; cursor: pointer; opacity: 0.9; }
.point.typical { stroke: #222; stroke-width: 1.6; }
.point:hover, .point:focus, .point.highlight { stroke: #000; stroke-width: 2.5; opacity: 1;
  outline: none; }
.point.playing { stroke: #d00; stroke-width: 3; opacity: 1; }
#legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.85rem; margin-top: 6px; }
#legend .legend-title { flex-basis: 100%; font-weight: 600; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 50%;
  margin-right: 5px; vertical-align: -1px; }
aside { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px;
  max-height: 82vh; overflow-y: auto; }
details { margin: 4px 0; }
summary { cursor: pointer; font-weight: 600; }
aside ol { margin: 2px 0 6px; padding-left: 1.6em; }
aside button { display: block; width: 100%; background: none; border: none; padding: 1px 0;
  text-align: left; cursor: pointer; font: inherit; color: #124; }
aside button:hover, aside button.playing { text-decoration: underline; }
aside button.playing { color: #d00; }
#tooltip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #999;
  border-radius: 4px; padding: 6px 8px; font-size: 0.85rem; box-shadow: 0 2px 6px #0003;
  max-width: 22em; z-index: 10; }
#tooltip .tooltip-title { font-weight: 700; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
"""

# Written against plain DOM APIs (no library) so the page stays small and works offline. Text
# from the data only ever goes through textContent or setAttribute, never innerHTML.
_SCRIPT = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const tracks = data.tracks;
  const SVG = "http://www.w3.org/2000/svg";
  const audio = document.getElementById("player");
  const tooltip = document.getElementById("tooltip");
  const nowPlaying = document.getElementById("now-playing");
  const status = document.getElementById("status");
  const legend = document.getElementById("legend");
  const circles = [];
  const listButtons = [];
  let current = -1;
  let usingFallback = false;

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function describe(track) {
    return track.title + " — " + track.artist;
  }

  function showTooltip(index, x, y) {
    const track = tracks[index];
    const title = element("div", track.title, "tooltip-title");
    title.dir = "auto";
    tooltip.replaceChildren(
      title,
      element("div", track.artist),
      element("div", "language: " + track.language + " · genre: " + track.genre),
      element("div", track.cluster + (track.typical ? " (typical)" : "")));
    tooltip.hidden = false;
    const left = Math.min(x + 14, window.innerWidth - tooltip.offsetWidth - 4);
    const top = Math.min(y + 14, window.innerHeight - tooltip.offsetHeight - 4);
    tooltip.style.left = Math.max(0, left) + "px";
    tooltip.style.top = Math.max(0, top) + "px";
  }

  function hideTooltip() {
    tooltip.hidden = true;
  }

  function markPlaying(index) {
    if (current >= 0) {
      circles[current].classList.remove("playing");
      listButtons[current].classList.remove("playing");
    }
    current = index;
    circles[index].classList.add("playing");
    listButtons[index].classList.add("playing");
  }

  function play(index) {
    const track = tracks[index];
    markPlaying(index);
    status.textContent = "";
    nowPlaying.textContent = "▶ " + describe(track) + " (" + track.cluster + ")";
    usingFallback = false;
    audio.src = track.src;
    start();
  }

  function start() {
    const attempt = audio.play();
    if (attempt) {
      attempt.catch(function (error) {
        // A file that cannot be opened is reported by the "error" handler below.
        if (error.name === "NotAllowedError") {
          status.textContent = "The browser blocked playback: press ▶ on the player.";
        }
      });
    }
  }

  audio.addEventListener("error", function () {
    if (current < 0) return;
    const track = tracks[current];
    if (!usingFallback && track.absolute !== track.src) {
      usingFallback = true;  // the page was moved without its music: try the file's own place
      audio.src = track.absolute;
      start();
      return;
    }
    status.textContent = "Cannot play " + track.path + " (moved, deleted or unsupported?)";
  });

  function drawPoints() {
    const layer = document.getElementById("points");
    tracks.forEach(function (track, index) {
      const circle = document.createElementNS(SVG, "circle");
      circle.setAttribute("cx", track.px);
      circle.setAttribute("cy", track.py);
      circle.setAttribute("r", track.typical ? 6 : 4.5);
      circle.setAttribute("class", track.typical ? "point typical" : "point");
      circle.setAttribute("tabindex", "0");
      circle.setAttribute("role", "button");
      circle.setAttribute("aria-label", describe(track));
      circle.setAttribute("data-index", index);
      circle.addEventListener("mouseenter", function (event) {
        showTooltip(index, event.clientX, event.clientY);
      });
      circle.addEventListener("mousemove", function (event) {
        showTooltip(index, event.clientX, event.clientY);
      });
      circle.addEventListener("mouseleave", hideTooltip);
      circle.addEventListener("focus", function () {
        const box = circle.getBoundingClientRect();
        showTooltip(index, box.right, box.bottom);
      });
      circle.addEventListener("blur", hideTooltip);
      circle.addEventListener("click", function () { play(index); });
      circle.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          play(index);
        }
      });
      layer.appendChild(circle);
      circles.push(circle);
    });
  }

  function colourBy(key) {
    const colouring = data.colourings[key];
    circles.forEach(function (circle, index) {
      circle.setAttribute("fill", colouring.categories[colouring.values[index]].colour);
    });
    const items = [element("div", "Colour = " + key + ": " + colouring.explanation + ".",
      "legend-title")];
    colouring.categories.forEach(function (category) {
      const item = element("span", undefined, "legend-item");
      const swatch = element("span", undefined, "swatch");
      swatch.style.background = category.colour;
      const name = element("span", category.name + " (" + category.count + ")");
      name.dir = "auto";
      item.append(swatch, name);
      items.push(item);
    });
    legend.replaceChildren(...items);
    document.body.setAttribute("data-colour", key);
  }

  function buildSwitch() {
    const fieldset = document.getElementById("colour-switch");
    Object.keys(data.colourings).forEach(function (key, position) {
      const colouring = data.colourings[key];
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "colour";
      input.value = key;
      input.checked = position === 0;
      const allUnknown = colouring.categories.length === 1 &&
        colouring.categories[0].name === "unknown";
      input.disabled = allUnknown;
      input.addEventListener("change", function () { colourBy(key); });
      const label = element("label");
      label.id = "colour-" + key;
      label.append(input, " " + key + (allUnknown ? " (unknown for every track)" : ""));
      fieldset.appendChild(label);
    });
  }

  function buildList() {
    const list = document.getElementById("cluster-list");
    const colouring = data.colourings.cluster;
    colouring.categories.forEach(function (category, position) {
      const details = element("details");
      details.open = true;
      const summary = element("summary");
      const swatch = element("span", undefined, "swatch");
      swatch.style.background = category.colour;
      summary.append(swatch, category.name + " · " + category.count + " tracks");
      const items = element("ol");
      tracks.forEach(function (track, index) {
        if (colouring.values[index] !== position) return;
        const button = element("button", (track.typical ? "★ " : "") + describe(track));
        button.type = "button";
        button.dir = "auto";
        button.setAttribute("data-index", index);
        button.addEventListener("click", function () { play(index); });
        button.addEventListener("mouseenter", function () {
          circles[index].classList.add("highlight");
        });
        button.addEventListener("mouseleave", function () {
          circles[index].classList.remove("highlight");
        });
        listButtons[index] = button;
        const item = element("li");
        item.appendChild(button);
        items.appendChild(item);
      });
      details.append(summary, items);
      list.appendChild(details);
    });
  }

  drawPoints();
  buildSwitch();
  buildList();
  colourBy("cluster");
})();
"""
