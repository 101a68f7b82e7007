"""``python -m transpert`` is the ``transpert`` command."""

from transpert.cli import main

raise SystemExit(main())
