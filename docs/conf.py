"""Sphinx configuration of the transpert documentation (MyST pages, executed MyST notebooks).

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings are errors; every
tutorial is executed). ``TRANSPERT_DOCS_EXECUTE`` chooses which tutorials run: unset or ``all``
(every one), or a comma-separated list of file stems (``01_cells_to_summaries``); the others are
rendered without outputs. The tests use that to build the API pages and one tutorial quickly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# document and run the checkout being built, not another installed copy: the API pages import it
# from sys.path, the tutorials' kernels (subprocesses) from PYTHONPATH
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
# the tutorials' kernels inherit this environment: figures must go to the notebook (inline), even
# where the shell exports MPLBACKEND=Agg (as CI does)
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ.setdefault("TRANSPERT_ROOT", str(ROOT))  # tutorials find tests/data through it

import transpert  # noqa: E402

project = "transpert"
author = "transpert developers"
copyright = "transpert developers"
release = version = transpert.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "build.py",
                    "README.md"]
root_doc = "index"

# --- API reference from the docstrings -------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Scale", "notes_style")]
add_module_names = False

# --- MyST and the executed tutorials -----------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_merge_streams = False
_chosen = os.environ.get("TRANSPERT_DOCS_EXECUTE", "all").strip()
if _chosen and _chosen != "all":
    keep = {s.strip() for s in _chosen.split(",") if s.strip()}
    nb_execution_excludepatterns = [f"tutorials/{p.stem}.md"
                                    for p in (Path(__file__).parent / "tutorials").glob("[0-9]*.md")
                                    if p.stem not in keep]

# --- HTML --------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"transpert {release}"
html_static_path = ["_static"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
}
html_show_sourcelink = False
