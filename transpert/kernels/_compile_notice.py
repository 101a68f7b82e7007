"""A one-line notice when numba compiles a kernel (a fresh install, or a changed kernel).

Every kernel is compiled with ``cache=True``: the first run compiles them (tens of seconds) and
later runs load them from the cache. numba announces a compilation (``numba:compile`` event)
only when the cache has no copy, so the notice appears exactly when the user waits for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

NOTICE = ("compiling transpert's numba kernels (first run only: they are cached for later "
          "runs) ...")


@contextlib.contextmanager
def compile_notice(echo: Callable[[str], None]):
    """While the block runs, call ``echo(NOTICE)`` once, at the first compilation, if any."""
    from numba.core import event

    class _Once(event.Listener):
        said = False

        def on_start(self, ev) -> None:
            if not self.said:
                self.said = True
                echo(NOTICE)

        def on_end(self, ev) -> None:
            pass

    listener = _Once()
    event.register("numba:compile", listener)
    try:
        yield listener
    finally:
        event.unregister("numba:compile", listener)
