"""Build the documentation: ``python docs/build.py`` (from anywhere).

Runs ``sphinx-build -W --keep-going -b html docs docs/_build/html``: warnings are errors and every
tutorial is executed. Each tutorial's execution time is tabulated on the page
``building.html``. ``--only STEM[,STEM]`` executes only those tutorials (the others are rendered
without outputs); ``--out DIR`` writes the HTML elsewhere. Prints each tutorial's execution time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def build(out=None, only: str | None = None, jobs: str = "1") -> int:
    """Run sphinx-build; return its exit code."""
    out = Path(out) if out else DOCS / "_build" / "html"
    env = dict(os.environ)
    if only:
        env["TRANSPERT_DOCS_EXECUTE"] = only
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-j", jobs,
           "-d", str(out.parent / "doctrees"), str(DOCS), str(out)]
    t0 = time.perf_counter()
    code = subprocess.call(cmd, env=env)
    print(f"sphinx-build finished in {time.perf_counter() - t0:.1f} s (exit code {code}); "
          f"time per tutorial: {out / 'building.html'}")
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="HTML output folder [docs/_build/html]")
    parser.add_argument("--only", help="execute only these tutorials (comma-separated file stems)")
    parser.add_argument("-j", "--jobs", default="1", help="sphinx-build parallel jobs [%(default)s]")
    args = parser.parse_args(argv)
    return build(args.out, args.only, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
