"""The HTML report: one self-contained page (figures embedded, nothing fetched) that a real
browser lays out with every image decoded."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from transpert._errors import TranspertInputError
from transpert.evaluate._html import markdown_to_html, write_html_report

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "scripts" / "render_report.py"


class _Page(HTMLParser):
    """Every tag with its attributes, and the text of the page (stdlib parser, no dependency)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse_page(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def assert_self_contained(html_path) -> _Page:
    """The page parses, loads nothing from anywhere (no external src/href, no stylesheet or
    script file), and every image is an embedded PNG that decodes."""
    page = Path(html_path).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    parsed = parse_page(page)
    names = [t for t, _ in parsed.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    for tag, attrs in parsed.tags:
        for key in ("src", "href", "srcset", "data"):
            value = attrs.get(key) or ""
            assert "://" not in value and not value.startswith("//"), f"<{tag} {key}={value[:60]!r}>"
        if tag == "img":
            src = attrs["src"]
            assert src.startswith("data:image/png;base64,"), src[:40]
            raw = base64.b64decode(src.split(",", 1)[1], validate=True)
            assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert "url(" not in page  # no CSS resource either
    return parsed


def _png(path: Path) -> bytes:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_markdown_page_embeds_the_figure_bytes(tmp_path):
    data = _png(tmp_path / "fig.png")
    (tmp_path / "report.md").write_text(
        "# My eval\n\nA `code` word and <script>alert(1)</script>.\n\n"
        "| metric | value |\n|---|---|\n| mae | 0.1 |\n\n![the figure](fig.png)\n")
    out = write_html_report(tmp_path / "report.md")
    assert out == tmp_path / "report.html"
    parsed = assert_self_contained(out)
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert len(imgs) == 1 and imgs[0]["alt"] == "the figure"
    assert base64.b64decode(imgs[0]["src"].split(",", 1)[1]) == data  # the same bytes, not a copy
    names = [t for t, _ in parsed.tags]
    assert names.count("table") == 1 and names.count("td") == 2
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text  # raw HTML in the Markdown is shown, not run
    assert "<title>My eval</title>" in out.read_text()


def test_missing_or_remote_images_are_refused(tmp_path):
    with pytest.raises(TranspertInputError, match="no such file"):
        markdown_to_html("![x](absent.png)", tmp_path)
    with pytest.raises(TranspertInputError, match="only local files"):
        markdown_to_html("![x](https://example.org/x.png)", tmp_path)
    with pytest.raises(TranspertInputError, match="report not found"):
        write_html_report(tmp_path / "absent.md")


def test_checker_catches_an_external_resource(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="https://example.org/x.png"></body></html>')
    with pytest.raises(AssertionError):
        assert_self_contained(bad)


def _evaluation_dir(tmp_path) -> Path:
    """A real evaluation written by the command line (report.md, plots, report.html)."""
    pytest.importorskip("matplotlib")
    from _evaluate_synth import make_pair
    from transpert.cli import main

    real, pred = make_pair(8)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "eval"
    assert main(["evaluate", "--real", str(tmp_path / "real.h5ad"), "--pred", str(tmp_path / "pred.h5ad"),
                 "--profile", "full", "-o", str(out), "--threads", "1", "--n-boot", "50"]) == 0
    return out


def test_evaluate_writes_a_self_contained_page(tmp_path):
    out = _evaluation_dir(tmp_path)
    parsed = assert_self_contained(out / "report.html")
    plots = sorted(p.name for p in out.glob("*.png"))
    assert len(plots) == 3
    assert sorted(a["alt"] for t, a in parsed.tags if t == "img") == plots
    text = "".join(parsed.text)
    assert "PDS diagnostics" in text and "bootstrap intervals" in text
    assert "four chosen perturbations" in text  # the panel of chosen perturbations says how


def test_report_renders_in_headless_chromium(tmp_path):
    sys.path.insert(0, str(RENDER.parent))
    try:
        from render_report import find_chromium
    finally:
        sys.path.remove(str(RENDER.parent))
    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    out = _evaluation_dir(tmp_path)
    done = subprocess.run([sys.executable, str(RENDER), str(out / "report.html"), "--png",
                           str(tmp_path / "shot.png")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["images"] == info["images_decoded"] == 3
    assert info["tables"] >= 2  # intervals, PDS scale curve and info["height"] > 1000
    shot = (tmp_path / "shot.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000


def _overlaps(fig) -> list[str]:
    """Neighbouring tick labels of one axis that overlap or nearly touch: on an x axis, less
    than one em (the label's font size) of white space between them; on a y axis, any overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            boxes = [(t.get_text(), t.get_window_extent(renderer),
                      t.get_fontsize() * fig.dpi / 72) for t in labels]
            lo, hi = ("x0", "x1") if name == "x" else ("y0", "y1")
            boxes.sort(key=lambda b: getattr(b[1], lo))
            for (a, box_a, em), (b, box_b, _) in zip(boxes, boxes[1:]):
                gap = getattr(box_b, lo) - getattr(box_a, hi)
                if gap < (em if name == "x" else 0):
                    found.append(f"{ax.get_title()} {name}: {a!r} / {b!r} ({gap:.1f} px apart)")
    return found


def test_report_figures_have_no_overlapping_tick_labels(tmp_path, monkeypatch):
    """Every figure of the report, checked as it is saved: no two tick labels of an axis
    overlap or touch (the per-perturbation histograms of MAE values around 0.02 had them,
    8.5 px apart at 10 pt before the fix)."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg", force=False)
    from matplotlib.figure import Figure

    from _evaluate_synth import make_pair
    from transpert.evaluate import evaluate, write_report

    real, pred = make_pair(8)
    result = evaluate(real, pred, profile="full", threads=1)
    # per-perturbation values in the narrow ranges of a real evaluation (MAE ~0.02, log1p),
    # whose default ticks (0.0180, 0.0185, ...) ran into each other
    n = len(result.results)
    result.results["mae"] = np.linspace(0.017834, 0.027512, n)
    result.results["pearson_delta"] = np.linspace(0.5012, 0.8567, n)
    seen, problems = [], []
    save = Figure.savefig

    def checked_save(fig, fname, *args, **kwargs):
        seen.append(Path(fname).name)
        problems.extend(f"{Path(fname).name}: {p}" for p in _overlaps(fig))
        return save(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked_save)
    write_report(result, tmp_path)
    assert sorted(seen) == ["pds_vs_scale.png", "per_perturbation_metrics.png", "pred_vs_real_delta.png"]
    assert not problems, problems


def test_overlap_check_catches_crowded_labels():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2, 1.2))
    ax.set_xticks(np.linspace(0, 1, 12), [f"{v:.6f}" for v in np.linspace(0.012, 0.013, 12)])
    assert _overlaps(fig)
    plt.close(fig)
