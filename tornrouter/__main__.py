"""``python -m tornrouter --conf FILE``."""

from .cli import main

raise SystemExit(main())
