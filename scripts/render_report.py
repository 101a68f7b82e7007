"""Render a transpert HTML report in headless Chromium and say what the browser saw.

    python scripts/render_report.py eval/report.html --png eval/report.png

Chromium (the Debian package ``chromium``) loads the page from disk with networking off and a
fresh profile. A probe copy of the page (the report itself has no script) records, once the page
has loaded, how many images the browser decoded (``naturalWidth > 0``), how many tables and
headings it laid out and the page height; the script prints that as one JSON line and exits 1 when
an image failed to decode or nothing was laid out. ``--png`` also writes a full-width screenshot.

Exit code 3 (and a message) when no Chromium is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

_PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var out = {images: imgs.length,
             images_decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             tables: document.querySelectorAll("table").length,
             headings: document.querySelectorAll("h1, h2, h3").length,
             height: document.documentElement.scrollHeight};
  var pre = document.createElement("pre"); pre.id = "render-probe";
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    """The Chromium executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="transpert-chromium-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def render(html_path, png_path=None, width: int = 1200, timeout: float = 120.0) -> dict:
    """Load ``html_path`` in headless Chromium; the probe's counts (and a PNG when asked)."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install -y chromium)")
    html_path = Path(html_path).resolve()
    page = html_path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="transpert-probe-") as tmp:
        probe = Path(tmp) / html_path.name
        probe.write_text(page.replace("</body>", _PROBE + "\n</body>", 1), encoding="utf-8")
        done = _chromium(browser, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    found = re.search(r'<pre id="render-probe">(\{.*?\})</pre>', done.stdout)
    if not found:
        raise RuntimeError(f"chromium did not finish loading {html_path}: {done.stderr[-500:]}")
    info = json.loads(found.group(1).replace("&quot;", '"'))
    if png_path is not None:
        height = max(600, min(int(info["height"]) + 40, 16000))
        _chromium(browser, [f"--window-size={width},{height}", "--hide-scrollbars",
                            f"--screenshot={Path(png_path).resolve()}", html_path.as_uri()], timeout)
        info["png"] = str(png_path)
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", help="the HTML report")
    parser.add_argument("--png", help="also write a full-page screenshot here")
    parser.add_argument("--width", type=int, default=1200, help="window width in pixels [%(default)s]")
    args = parser.parse_args(argv)
    try:
        info = render(args.html, args.png, args.width)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 3
    print(json.dumps(info))
    ok = info["images_decoded"] == info["images"] and (info["tables"] + info["headings"]) > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
