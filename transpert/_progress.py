"""Progress reporting for long steps: a tqdm bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("transpert")


def _is_terminal() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


class Progress:
    """A counter that shows itself as a bar on a terminal and as periodic log lines otherwise.

    ``show=None`` decides from the terminal; ``False`` silences it (tests, library use).
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", show: bool | None = None,
                 log_every_s: float = 10.0):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = 0
        self._bar = None
        self._log = False
        self._last_log = time.monotonic()
        self._log_every_s = log_every_s
        if show is None:
            show = _is_terminal()
            self._log = not show
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._log and time.monotonic() - self._last_log >= self._log_every_s:
            self._last_log = time.monotonic()
            total = f"/{self.total}" if self.total else ""
            logger.info("%s: %d%s %s", self.desc, self.done, total, self.unit)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T], total: int | None, desc: str, unit: str = "it",
          show: bool | None = None) -> Iterator[T]:
    """Iterate with progress (see :class:`Progress`)."""
    with Progress(total, desc, unit, show) as progress:
        for item in iterable:
            yield item
            progress.update(1)
