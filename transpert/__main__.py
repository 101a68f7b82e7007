"""``python -m transpert`` is the ``transpert`` command."""

from transpert.cli import main

# guarded: worker processes started by spawn (a local Dask cluster) import this module again
if __name__ == "__main__":
    raise SystemExit(main())
