"""``transpert data list | fetch NAME... | verify NAME...``: the datasets of the manifest."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manifest", metavar="YAML",
                        help="extra manifest merged over the packaged one, for your own files (default: "
                        "none; also $TRANSPERT_MANIFEST)")
    common.add_argument("--cache-dir", metavar="DIR",
                        help="download cache (default: $TRANSPERT_CACHE or the user cache dir)")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    kw = dict(parents=[common], formatter_class=parser.formatter_class)  # the command line's help style
    sub.add_parser("list", help="list the datasets and whether they are here",
                   description="List the manifest's datasets: size, checksum status, local status.", **kw)
    p = sub.add_parser("fetch", help="download datasets into the cache (resumable, checked)",
                       description="Download datasets into the cache; an interrupted download resumes.",
                       **kw)
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset names of the manifest (see `data list`)")
    p.add_argument("--force", action="store_true", help="download again even if already fetched")
    p = sub.add_parser("verify", help="check fetched or local datasets against their checksums",
                       description="Check size and checksum; a corrupt fetched file is moved aside.", **kw)
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset names of the manifest (see `data list`)")

def _size(entry) -> str:
    if entry.size is None:
        return entry.size_note or "?"
    size = float(entry.size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(entry.size)  # pragma: no cover


def _status(entry, cache_dir) -> str:
    if entry.is_local:
        return "local" if entry.path.exists() else "local (missing)"
    target = entry.cache_path(cache_dir)
    if target.exists():
        return "fetched"
    if target.with_name(target.name + ".part").exists():
        return "partial"
    return "-"


def run(args) -> int:
    from transpert._errors import ChecksumMismatchError, TranspertInputError
    from transpert.data.fetch import DownloadError, fetch, verify
    from transpert.data.manifest import resolve_cache_dir
    from transpert.data.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    if args.data_command == "list":
        rows = [("NAME", "KIND", "CELL LINE", "PERTURBATION", "SIZE", "CHECKSUM", "HERE")]
        for name, e in manifest.items():
            checksum = f"{e.checksum[0]}" if e.checksum else "unverified"
            rows.append((name, e.kind, e.cell_line or "", e.perturbation or "", _size(e), checksum,
                         _status(e, args.cache_dir)))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
        print(f"\ncache: {resolve_cache_dir(args.cache_dir)}")
        return 0
    import sys

    failed = 0

    def error(name: str, err: Exception, what: str = "error") -> None:
        text = str(err) if str(err).startswith(f"{name}: ") else f"{name}: {err}"
        print(f"transpert data {args.data_command}: {what}: {text}", file=sys.stderr)

    for name in args.names:
        try:
            if args.data_command == "fetch":
                path = fetch(name, manifest=manifest, cache_dir=args.cache_dir, force=args.force)
                print(f"{name}: {path}")
            else:
                result = verify(name, manifest=manifest, cache_dir=args.cache_dir)
                state = "ok" if result.ok else f"unverified (no checksum in the manifest; {result.algorithm} {result.actual})"
                print(f"{name}: {state} {result.path}")
        except ChecksumMismatchError as err:
            error(name, err, "error: CHECKSUM MISMATCH")
            failed += 1
        except (DownloadError, TranspertInputError) as err:
            error(name, err)
            failed += 1
    return 1 if failed else 0
