"""Sections of blocks (figures, tables, notes, image galleries) → one self-contained HTML page.

plotly.js is embedded once; each figure is a <div> plus its JSON in a
<script type="application/json" class="figure-data"> that one small script hands to
Plotly.newPlot, so the page works offline and its data can be read back without a browser.
Figures that fail to draw and images that fail to load are listed in a box at the top.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass
class FigureBlock:
    """A plotly figure (plotly.graph_objects.Figure) drawn into <div id=id>."""

    id: str
    title: str
    figure: Any
    caption: str = ""


@dataclass
class NoteBlock:
    """A sentence in place of a figure that cannot be drawn (and why)."""

    text: str


@dataclass
class TableBlock:
    """A table; cells are plain text (escaped) unless `raw_columns` names them."""

    id: str
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    raw_columns: tuple[int, ...] = ()
    row_classes: list[str] = field(default_factory=list)


@dataclass
class GalleryBlock:
    """Groups of images, each group with a caption: (caption, [(alt text, data URI), ...])."""

    id: str
    title: str
    groups: list[tuple[str, list[tuple[str, str]]]]
    caption: str = ""
    large: bool = False  # full-width figures (explain PNGs) instead of thumbnails


Block = Union[FigureBlock, NoteBlock, TableBlock, GalleryBlock]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]
    intro: str = ""


CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header { padding: 20px 32px; border-bottom: 1px solid var(--line); background: var(--bg); }
header h1 { margin: 0 0 6px; font-size: 22px; }
header dl { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 0; }
header dt { color: var(--muted); } header dd { margin: 0 0 0 6px; font-weight: 600; }
header div.fact { display: flex; }
nav { padding: 8px 32px; border-bottom: 1px solid var(--line); }
nav a { margin-right: 18px; color: var(--accent); text-decoration: none; }
main { padding: 0 32px 40px; max-width: 1400px; }
section { margin-top: 28px; }
h2 { font-size: 19px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.intro, p.caption { color: var(--muted); margin: 4px 0 8px; }
p.note { background: var(--bg); border-left: 4px solid var(--line); padding: 8px 12px; }
div.figure { width: 100%; min-height: 120px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.pruned td { color: var(--muted); } tr.failed td { color: #9a6700; } tr.best td { font-weight: 600; }
div.gallery-group { margin: 6px 0 14px; }
div.gallery-group img { height: 64px; margin: 0 4px 4px 0; image-rendering: pixelated; border: 1px solid var(--line); }
div.gallery.large img { height: auto; max-width: 100%; image-rendering: auto; }
#report-errors { background: #ffebe9; border: 1px solid #cf222e; padding: 8px 16px; margin: 16px 32px 0; }
"""

SCRIPT = """
(function () {
  var box = document.getElementById('report-errors');
  function fail(message) {
    box.hidden = false;
    var li = document.createElement('li');
    li.textContent = message;
    box.querySelector('ul').appendChild(li);
  }
  window.addEventListener('error', function (e) { fail('script error: ' + e.message); });
  var data = document.querySelectorAll('script.figure-data');
  var pending = [];
  data.forEach(function (s) {
    var target = s.getAttribute('data-target');
    try {
      var fig = JSON.parse(s.textContent);
      var config = {responsive: true, displaylogo: false};
      pending.push(Plotly.newPlot(target, fig.data, fig.layout || {}, config).then(
        function () { return 1; }, function (e) { fail(target + ': ' + e); return 0; }));
    } catch (e) {
      fail(target + ': ' + e.message);
    }
  });
  Promise.all(pending).then(function (drawn) {
    var n = drawn.reduce(function (a, b) { return a + b; }, 0);
    document.body.setAttribute('data-figures-drawn', n + '/' + data.length);
  });
  window.addEventListener('load', function () {
    document.querySelectorAll('main img').forEach(function (img) {
      if (!img.complete || img.naturalWidth === 0) { fail('image did not load: ' + img.alt); }
    });
  });
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def figure_json(figure: Any) -> str:
    """The figure as JSON safe inside a <script> element ("<" escaped as \\u003c)."""
    return figure.to_json().replace("<", "\\u003c")


def _block(block: Block) -> str:
    if isinstance(block, NoteBlock):
        return f'<p class="note">{_e(block.text)}</p>'
    if isinstance(block, FigureBlock):
        caption = f'<p class="caption">{_e(block.caption)}</p>' if block.caption else ""
        return (f'<h3>{_e(block.title)}</h3>{caption}<div class="figure" id="{_e(block.id)}"></div>\n'
                f'<script type="application/json" class="figure-data" data-target="{_e(block.id)}">'
                f"{figure_json(block.figure)}</script>")
    if isinstance(block, TableBlock):
        head = "".join(f"<th>{_e(h)}</th>" for h in block.headers)
        body = []
        for i, row in enumerate(block.rows):
            cls = block.row_classes[i] if i < len(block.row_classes) else ""
            cells = "".join(f"<td{_td_class(c)}>{c if j in block.raw_columns else _e(c)}</td>"
                            for j, c in enumerate(row))
            body.append(f'<tr class="{_e(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
        caption = f'<p class="caption">{_e(block.caption)}</p>' if block.caption else ""
        return (f'{caption}<table id="{_e(block.id)}"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')
    if isinstance(block, GalleryBlock):
        parts = [f"<h3>{_e(block.title)}</h3>"]
        if block.caption:
            parts.append(f'<p class="caption">{_e(block.caption)}</p>')
        parts.append(f'<div class="gallery{" large" if block.large else ""}" id="{_e(block.id)}">')
        for caption, images in block.groups:
            imgs = "".join(f'<img alt="{_e(alt)}" title="{_e(alt)}" src="{uri}">' for alt, uri in images)
            parts.append(f'<div class="gallery-group"><div>{_e(caption)}</div>{imgs}</div>')
        parts.append("</div>")
        return "".join(parts)
    raise TypeError(f"unknown block type {type(block).__name__}")


def _td_class(cell: str) -> str:
    text = str(cell).replace(",", "").replace("%", "")
    try:
        float(text)
    except ValueError:
        return ""
    return ' class="num"'


def render_page(title: str, facts: list[tuple[str, str]], sections: list[Section]) -> str:
    """The whole page: header with facts, a link per section, the sections, plotly.js once."""
    from plotly.offline import get_plotlyjs

    fact_html = "".join(f'<div class="fact"><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>' for k, v in facts)
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        intro = f'<p class="intro">{_e(s.intro)}</p>' if s.intro else ""
        blocks = "\n".join(_block(b) for b in s.blocks)
        body.append(f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>{intro}\n{blocks}</section>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style>
<script>{get_plotlyjs()}</script>
</head>
<body>
<header><h1>{_e(title)}</h1><dl>{fact_html}</dl></header>
<nav>{nav}</nav>
<div id="report-errors" hidden><strong>Parts of this report could not be drawn:</strong><ul></ul></div>
<main>
{chr(10).join(body)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
