"""``python -m egresswatch``: the same command line as the ``egresswatch`` script."""

from egresswatch.cli import main

raise SystemExit(main())
