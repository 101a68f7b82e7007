"""Where a command writes: checked before any work, written so that nothing is left half-done.

A command that writes one file (``summarize -o``, ``predict -o``, ...) writes it atomically
(:mod:`transpert._io`); :func:`check_output_file` refuses, before the work starts, a path that
cannot become that file (an existing directory, a parent that is a file).

A command that writes a folder of files (``evaluate``, ``rank``, ``run``, ``fit``) uses
:func:`output_dir`: the files go into a staging folder beside the target, which replaces the
target whole only when the command succeeds. So a folder never mixes the files of two runs
(a second ``evaluate --no-report`` into the folder of an earlier ``evaluate --baseline`` would
otherwise leave that run's ``score.csv`` and ``report.md`` beside the new ``results.csv``), and a
run that fails part-way leaves no folder behind. An existing non-empty folder is refused unless
``overwrite`` is given (``--overwrite`` on the command line), then it is replaced whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from transpert._errors import TranspertInputError


def check_output_file(path, *, option: str = "-o/--out") -> Path:
    """Raise unless ``path`` can be written as a file (checked before the work, not after it)."""
    path = Path(path)
    if path.is_dir():
        raise TranspertInputError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise TranspertInputError(f"{option} {path}: {parent} is a file, not a directory")
    return path


def check_output_dir(path, *, overwrite: bool = False, option: str = "-o/--out") -> Path:
    """Raise unless ``path`` can become the command's output folder: it must not be a file, and
    an existing non-empty folder needs ``overwrite`` (it is then replaced whole)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TranspertInputError(f"{option} {path}: exists and is a file, not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise TranspertInputError(
            f"{option} {path}: the directory exists and is not empty; choose a new one, or pass "
            "--overwrite to replace it whole (its files would otherwise mix with this run's)")
    check_output_file(path / "_", option=option)  # the parents
    return path


@contextlib.contextmanager
def output_dir(path, *, overwrite: bool = False, option: str = "-o/--out") -> Iterator[Path]:
    """Yield a fresh staging folder; on success it becomes ``path`` (replacing an old one when
    ``overwrite``), on an exception it is removed and ``path`` is left as it was."""
    path = check_output_dir(path, overwrite=overwrite, option=option)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it 0700; a plain mkdir would not
        if path.exists():
            # the old folder is moved aside first, so the target is never half old, half new
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(stage, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, path)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
