"""``python -m hub.cli``: the same as the ``warnhub`` command."""

from hub.cli.main import main

raise SystemExit(main())
