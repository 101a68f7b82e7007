"""The one place that decides how many CPU cores transpert uses.

Engines call :func:`resolve_threads` and, for numba kernels, run inside :func:`numba_threads`.
joblib workers are started with one numba/BLAS thread each (``inner_max_num_threads=1``), so
threads and processes never oversubscribe the machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def available_cores() -> int:
    """Cores this process may run on (respects container CPU affinity, unlike ``cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """Turn a user's ``threads`` argument into a positive count.

    ``None`` or ``0`` means every available core; a negative value ``-k`` means all but ``k - 1``
    cores, as in joblib.
    """
    cores = available_cores()
    if threads is None or threads == 0:
        return cores
    if not isinstance(threads, (int,)) or isinstance(threads, bool):
        raise TypeError(f"threads must be an integer or None, got {threads!r}")
    if threads < 0:
        return max(1, cores + 1 + threads)
    return threads


@contextlib.contextmanager
def numba_threads(threads: int | None) -> Iterator[int]:
    """Run numba parallel kernels with ``threads`` threads inside the block, then restore."""
    import numba

    n = min(resolve_threads(threads), numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


def kernel_threads() -> int:
    """Threads a caller may run serial (``nogil``) numba kernels on side by side: numba's
    current thread count (what :func:`numba_threads` set; every core outside it)."""
    import numba

    return max(1, int(numba.get_num_threads()))
