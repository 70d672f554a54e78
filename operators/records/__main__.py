"""``python -m operators.records``: see :mod:`operators.records.cli`."""

from __future__ import annotations

import sys

from operators.records.cli import run

if __name__ == "__main__":
    sys.exit(run())
