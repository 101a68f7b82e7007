"""The evaluation report as one self-contained HTML page: the Markdown report rendered, every
figure embedded (base64 PNG), the style inline, nothing fetched from anywhere.

A report is written as Markdown first (``report.md``, ``ranking.md`` ...); :func:`write_html_report`
renders it beside itself as ``report.html``, so a reader can open one file in a browser, mail it
or attach it, and see the same tables and figures.
"""

from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path

from transpert._errors import TranspertInputError
from transpert._io import atomic_path

#: the page's style: readable tables and figures, no web fonts, no external sheet
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; line-height: 1.45;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; color: #222; }
h1 { border-bottom: 2px solid #4477aa; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .15em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .88em; display: block;
        overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #eef2f7; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; font-size: .92em; }
pre { background: #f6f6f6; padding: .7em 1em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0 1.2em;
      border: 1px solid #eee; }
footer { margin-top: 3em; color: #888; font-size: .8em; }
"""


def _embed(src: str, base: Path) -> str:
    """A local image path as a ``data:`` URI (already embedded or remote sources are refused)."""
    if src.startswith("data:"):
        return src
    if "://" in src or src.startswith("//"):
        raise TranspertInputError(f"report image {src!r}: only local files can be embedded")
    path = (base / src).resolve()
    if not path.is_file():
        raise TranspertInputError(f"report image {src!r}: no such file in {base}")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown_to_html(text: str, base_dir=".", title: str | None = None) -> str:
    """Render a Markdown report as a complete, self-contained HTML page.

    Parameters
    ----------
    text
        The report in Markdown (CommonMark plus pipe tables); raw HTML in it is shown as text.
    base_dir
        The folder the report's image paths are relative to; each image is read and embedded as
        a base64 ``data:`` URI.
    title
        The page title; the report's first heading by default.

    Returns
    -------
    str
        The HTML page (UTF-8, inline style, no external resource).

    Examples
    --------
    >>> page = markdown_to_html("# Score\\n\\n| metric | value |\\n|---|---|\\n| mae | 0.1 |")
    >>> "<table>" in page and "<h1>Score</h1>" in page
    True
    """
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    base = Path(base_dir)
    heading = None
    for i, tok in enumerate(tokens):
        if tok.type == "inline" and heading is None and i and tokens[i - 1].type == "heading_open":
            heading = tok.content
        for child in tok.children or ():
            if child.type == "image":
                child.attrSet("src", _embed(str(child.attrGet("src")), base))
    body = md.renderer.render(tokens, md.options, {})
    title = title or heading or "transpert report"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<main>\n{body}</main>\n<footer>Written by transpert; figures embedded, "
            "no external resources.</footer>\n</body>\n</html>\n")


def write_html_report(markdown_path, html_path=None, title: str | None = None) -> Path:
    """Render a Markdown report file into a self-contained HTML page beside it.

    Parameters
    ----------
    markdown_path
        The Markdown report (e.g. ``eval/report.md``); its images are read relative to its folder.
    html_path
        Where to write the page; ``report.html`` in the same folder by default.
    title
        The page title; the report's first heading by default.

    Returns
    -------
    Path
        The written HTML file.

    Examples
    --------
    >>> write_html_report("eval/report.md")  # doctest: +SKIP
    PosixPath('eval/report.html')
    """
    markdown_path = Path(markdown_path)
    if not markdown_path.is_file():
        raise TranspertInputError(f"{markdown_path}: report not found")
    target = Path(html_path) if html_path is not None else markdown_path.with_name("report.html")
    page = markdown_to_html(markdown_path.read_text(encoding="utf-8"), markdown_path.parent, title)
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
