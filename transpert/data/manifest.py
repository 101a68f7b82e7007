"""The data manifest: every dataset transpert knows, where it comes from and how to read it.

A manifest is a YAML file with a ``datasets:`` mapping of name -> entry. An entry has either a
``url`` (downloaded by :func:`transpert.data.fetch` into the cache) or a local ``path``
(relative paths are relative to the manifest file), the file's ``size`` and checksum (``sha256``
or ``md5``; ``null`` with ``verified: false`` when nobody has checked it), what it is
(``cell_line``, ``perturbation``, ``kind``) and the ``schema`` mapping of
:class:`transpert.data.Schema` that loaders use. The packaged manifest lists the public datasets;
users add their own files with the same fields in another YAML (``load_manifest(path)`` or the
``TRANSPERT_MANIFEST`` environment variable, several separated by ``os.pathsep``), merged over it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from transpert._errors import TranspertInputError

#: environment variable naming the cache folder of fetched datasets
CACHE_ENV = "TRANSPERT_CACHE"

#: the manifest shipped with the package (in a checkout, a link to the top-level data_manifest.yaml)
DEFAULT_MANIFEST = Path(__file__).with_name("data_manifest.yaml")
MANIFEST_ENV = "TRANSPERT_MANIFEST"

_HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}
KINDS = ("cells", "pseudobulk", "table")
_FIELDS = {"description", "kind", "url", "path", "filename", "size", "size_note", "sha256", "md5",
           "verified", "cell_line", "perturbation", "shape", "citation", "notes", "schema"}


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the manifest (see the module docstring for the fields)."""

    name: str
    kind: str = "cells"
    description: str = ""
    url: str | None = None
    path: Path | None = None
    filename: str | None = None
    size: int | None = None
    size_note: str | None = None
    sha256: str | None = None
    md5: str | None = None
    verified: bool = False
    cell_line: str | None = None
    perturbation: str | None = None
    shape: dict | None = None
    citation: str | None = None
    notes: str | None = None
    schema: dict = dataclasses.field(default_factory=dict)
    source: Path | None = None  # the manifest file this entry came from

    @property
    def checksum(self) -> tuple[str, str] | None:
        """``(algorithm, hex digest)``; sha256 preferred; None when the manifest has none."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def cache_path(self, cache_dir: str | os.PathLike | None = None) -> Path:
        """Where :func:`fetch` places this dataset: ``<cache>/<name>/<filename>``."""
        if self.url is None:
            raise TranspertInputError(f"dataset {self.name!r} has no url (it is a local file: {self.path})")
        filename = self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]
        return resolve_cache_dir(cache_dir) / self.name / filename

    def local_file(self, cache_dir: str | os.PathLike | None = None) -> Path:
        """The file a loader should read: the local ``path``, or the fetched file in the cache."""
        if self.path is not None:
            if not self.path.exists():
                raise TranspertInputError(f"dataset {self.name!r}: local file {self.path} does not exist")
            return self.path
        target = self.cache_path(cache_dir)
        if not target.exists():
            raise TranspertInputError(
                f"dataset {self.name!r} is not in the cache ({target}); run `transpert data fetch {self.name}`"
            )
        return target

    def schema_obj(self):
        from transpert.data.schema import Schema

        return Schema.from_dict(self.schema)


class Manifest(Mapping):
    """Datasets by name (a read-only mapping of :class:`DatasetEntry`)."""

    def __init__(self, entries: Mapping[str, DatasetEntry], sources: list[Path] | None = None):
        self._entries = dict(entries)
        self.sources = list(sources or [])

    def __getitem__(self, name: str) -> DatasetEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, default: Any = ...) -> DatasetEntry:  # type: ignore[override]
        """The entry called ``name``; an unknown name is an error listing the known ones."""
        if name in self._entries:
            return self._entries[name]
        if default is not ...:
            return default
        raise TranspertInputError(
            f"no dataset {name!r} in the manifest ({', '.join(map(str, self.sources)) or 'empty'}); "
            f"known: {', '.join(sorted(self._entries))}"
        )

    def merged(self, other: "Manifest") -> "Manifest":
        """This manifest with ``other``'s entries added (same name: ``other`` wins)."""
        return Manifest({**self._entries, **other._entries}, self.sources + other.sources)


def parse_entry(name: str, raw: Mapping[str, Any], source: Path | None = None) -> DatasetEntry:
    """Check one manifest entry and build it; errors name the manifest file, dataset and field."""
    where = f"{source or '<manifest>'}: dataset {name!r}"
    if not isinstance(raw, Mapping):
        raise TranspertInputError(f"{where}: entry must be a mapping, got {raw!r}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise TranspertInputError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    values = dict(raw)
    if not values.get("url") and not values.get("path"):
        raise TranspertInputError(f"{where}: needs a `url` or a local `path`")
    if values.get("path"):
        path = Path(os.path.expanduser(str(values["path"])))
        if not path.is_absolute() and source is not None:
            path = source.resolve().parent / path
        values["path"] = path
    kind = values.get("kind", "cells")
    if kind not in KINDS:
        raise TranspertInputError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    size = values.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise TranspertInputError(f"{where}: size must be a byte count or null, got {size!r}")
    for algo, pattern in _HEX.items():
        digest = values.get(algo)
        if digest is not None:
            if not isinstance(digest, str) or not pattern.match(digest.lower()):
                raise TranspertInputError(f"{where}: {algo} must be a hex digest (quoted in YAML) or null, got {digest!r}")
            values[algo] = digest.lower()
    verified = values.get("verified", False)
    if not isinstance(verified, bool):
        raise TranspertInputError(f"{where}: verified must be true or false, got {verified!r}")
    if verified and not (values.get("sha256") or values.get("md5")):
        raise TranspertInputError(f"{where}: verified: true needs a sha256 or md5")
    schema = values.get("schema") or {}
    from transpert.data.schema import Schema

    try:
        Schema.from_dict(schema)
    except TranspertInputError as err:
        raise TranspertInputError(f"{where}: {err}") from None
    values["schema"] = dict(schema)
    return DatasetEntry(name=name, source=source, **values)


def parse_manifest(text: str, source: Path | None = None) -> Manifest:
    """Parse manifest YAML text."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise TranspertInputError(f"{source or '<manifest>'}: not valid YAML: {err}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("datasets", {}), Mapping):
        raise TranspertInputError(f"{source or '<manifest>'}: expected a top-level `datasets:` mapping")
    entries = {str(name): parse_entry(str(name), raw, source) for name, raw in (doc.get("datasets") or {}).items()}
    return Manifest(entries, [source] if source is not None else [])


def read_manifest_file(path: str | os.PathLike) -> Manifest:
    path = Path(path)
    if not path.exists():
        raise TranspertInputError(f"{path}: manifest file not found")
    return parse_manifest(path.read_text(encoding="utf-8"), path)


def load_manifest(path: str | os.PathLike | None = None, *, include_default: bool = True) -> Manifest:
    """The packaged manifest, then the files in ``$TRANSPERT_MANIFEST``, then ``path``, merged
    in that order (a later entry with the same name replaces an earlier one).

    ``include_default=False`` reads only ``path`` (and the environment's files).
    """
    manifest = Manifest({})
    if include_default:
        manifest = manifest.merged(read_manifest_file(DEFAULT_MANIFEST))
    for extra in filter(None, os.environ.get(MANIFEST_ENV, "").split(os.pathsep)):
        manifest = manifest.merged(read_manifest_file(extra))
    if path is not None:
        manifest = manifest.merged(read_manifest_file(path))
    return manifest


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$TRANSPERT_CACHE``, else the user's cache dir for transpert."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("transpert"))


def is_manifest_name(source) -> bool:
    """Whether ``source`` names a dataset of the manifest (not a path); False when no manifest
    can be read."""
    try:
        return str(source) in load_manifest()
    except TranspertInputError:
        return False
