"""``python -m moopt``: the command-line interface."""

from __future__ import annotations

import sys

from moopt.cli import main

sys.exit(main())
