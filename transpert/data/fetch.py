"""Download manifest datasets into the cache, resumably, checked, and placed atomically.

A download goes to ``<cache>/<name>/<file>.part``; an interrupted one is resumed from there with
an HTTP ``Range`` request (a server that ignores Range sends the whole file and we start over).
Only once the size and checksum match the manifest is the ``.part`` file renamed onto the final
name, so a loader never sees a partial or corrupt file. A checksum mismatch deletes the
download (resuming it would only reproduce the bad bytes) and raises
:class:`ChecksumMismatchError`.

The cache is ``$TRANSPERT_CACHE`` if set, else the user's cache directory (platformdirs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from transpert._errors import ChecksumMismatchError
from transpert._progress import Progress
from transpert.data.manifest import CACHE_ENV, Manifest, load_manifest

logger = logging.getLogger(__name__)

_BLOCK = 1 << 20  # 1 MiB reads from the network and the disk


class DownloadError(RuntimeError):
    """The server or the network failed; the partial download is kept for a later resume."""


class Unreachable(DownloadError):
    """No connection to the server (no network, unknown host, refused, timed out)."""

    def __init__(self, url: str, reason, timeout: float):
        self.host = urllib.parse.urlsplit(url).netloc or url
        self.why = _plain_reason(reason, timeout)
        super().__init__(f"{url}: the host {self.host} could not be reached ({self.why})")


def _plain_reason(reason, timeout: float) -> str:
    """Why a connection failed, in words (not the operating system's errno text)."""
    if isinstance(reason, socket.gaierror):
        return "its name could not be resolved: offline, or no such host"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def _remove_empty(part: Path, created: list[Path]) -> None:
    """After a failed download: an empty ``.part`` file and the folders this attempt created,
    while they are empty (a partial download is kept for a resume, with its folder)."""
    if part.exists() and part.stat().st_size == 0:
        part.unlink()
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: the file, the checksum used and whether it matched.

    ``ok`` is None when the manifest has no checksum for the dataset (then ``actual`` is the
    file's sha256, to be pinned in a manifest).
    """

    name: str
    path: Path
    algorithm: str
    expected: str | None
    actual: str
    ok: bool | None


def _get_manifest(manifest):

    if isinstance(manifest, Manifest):
        return manifest
    return load_manifest(manifest)


def _check_file(entry, path: Path) -> VerifyResult:
    """Size and checksum of ``path`` against ``entry``; raises ChecksumMismatchError on a mismatch."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ChecksumMismatchError(
            f"{path}: dataset {entry.name!r} has {size} bytes, the manifest says {entry.size}"
        )
    algorithm, expected = entry.checksum or ("sha256", None)
    actual = file_digest(path, algorithm)
    if expected is not None and actual != expected:
        raise ChecksumMismatchError(
            f"{path}: dataset {entry.name!r} has {algorithm} {actual}, the manifest says {expected}"
        )
    return VerifyResult(entry.name, path, algorithm, expected, actual, None if expected is None else True)


def verify(name: str, *, manifest=None, cache_dir: str | os.PathLike | None = None) -> VerifyResult:
    """Check a local or fetched dataset against the manifest's size and checksum.

    A fetched file that fails is moved aside to ``<file>.corrupt`` (so no loader takes it) and
    :class:`ChecksumMismatchError` is raised; a user's local ``path`` file is never moved.
    """
    entry = _get_manifest(manifest).get(name)
    path = entry.local_file(cache_dir)
    try:
        result = _check_file(entry, path)
    except ChecksumMismatchError as err:
        if not entry.is_local:
            corrupt = path.with_name(path.name + ".corrupt")
            os.replace(path, corrupt)
            raise ChecksumMismatchError(f"{err}; moved to {corrupt}") from None
        raise
    if result.ok is None:
        logger.warning("dataset %r has no checksum in the manifest (unverified); its sha256 is %s",
                       name, result.actual)
    return result


def fetch(name: str, *, manifest=None, cache_dir: str | os.PathLike | None = None,
          show_progress: bool | None = None, force: bool = False, timeout: float = 60.0) -> Path:
    """Download dataset ``name`` into the cache (resuming a partial download) and return its path.

    A local ``path`` dataset is only verified. An already fetched file is verified and returned
    (``force=True`` downloads it again). Raises :class:`ChecksumMismatchError` when the download
    does not match the manifest, :class:`DownloadError` when the transfer fails (the ``.part``
    file is kept for a resume).
    """
    entry = _get_manifest(manifest).get(name)
    if entry.is_local:
        return verify(name, manifest=_get_manifest(manifest), cache_dir=cache_dir).path
    target = entry.cache_path(cache_dir)
    if target.exists() and not force:
        try:
            _check_file(entry, target)
            return target
        except ChecksumMismatchError as err:
            logger.warning("%s; downloading it again", err)
            target.unlink()
    created = _missing_folders(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if force and part.exists():
        part.unlink()
    try:
        _download(entry.url, part, entry.size, desc=f"downloading {name}", show=show_progress,
                  timeout=timeout)
    except Unreachable as err:
        _remove_empty(part, created)  # an offline attempt leaves no empty cache folder behind
        raise DownloadError(
            f"{name}: the host {err.host} could not be reached ({err.why}): check the network "
            f"connection, or download {entry.url} yourself and put it at {target} (the cache "
            f"folder; --cache-dir or ${CACHE_ENV} chooses another)") from None
    except DownloadError:
        _remove_empty(part, created)
        raise
    try:
        result = _check_file(entry, part)
    except ChecksumMismatchError as err:
        part.unlink()
        raise ChecksumMismatchError(f"{err} (download from {entry.url} deleted)") from None
    if result.ok is None:
        logger.warning("dataset %r has no checksum in the manifest (unverified); downloaded file's "
                       "sha256 is %s", name, result.actual)
    os.replace(part, target)  # atomic on one filesystem: the final name only ever holds a whole file
    logger.info("fetched %s -> %s", name, target)
    return target


def _download(url: str, part: Path, size: int | None, *, desc: str, show: bool | None,
              timeout: float) -> None:
    """Fill ``part`` with the bytes of ``url``, continuing from its current length."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()  # longer than the file can be: not ours to resume
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"User-Agent": "transpert", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range not satisfiable: the partial file is not a prefix we can extend; start over.
            part.unlink()
            return _download(url, part, size, desc=desc, show=show, timeout=timeout)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise Unreachable(url, getattr(err, "reason", err), timeout) from None
    with response:
        status = response.status
        if offset and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(f"{url}: asked for bytes from {offset}, server sent {content_range!r}")
            mode = "ab"
            logger.info("resuming %s at byte %d", url, offset)
        elif status == 200:
            if offset:
                logger.info("%s: server does not resume (no Range support); starting over", url)
            offset, mode = 0, "wb"
        else:
            raise DownloadError(f"{url}: unexpected HTTP status {status}")
        with Progress(size, desc, unit="B", show=show) as progress, open(part, mode) as out:
            progress.update(offset)
            try:
                for block in iter(lambda: response.read(_BLOCK), b""):
                    out.write(block)
                    progress.update(len(block))
            except (OSError, http.client.HTTPException) as err:  # incl. IncompleteRead, timeouts
                out.flush()
                raise DownloadError(
                    f"{url}: transfer interrupted after {out.tell()} bytes ({err!r}); run again to resume"
                ) from None
    got = part.stat().st_size
    if size is not None and got < size:
        raise DownloadError(f"{url}: transfer ended after {got} of {size} bytes; run again to resume")
