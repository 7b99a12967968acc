"""``python -m lavsim``: the ``lavsim`` command (see :mod:`lavsim.cli`)."""

from lavsim.cli import main

raise SystemExit(main())
