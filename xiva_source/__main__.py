"""``python -m xiva_source <command>``: the ``xiva-source`` command line (xiva_source.cli)."""

from __future__ import annotations

import sys

from xiva_source.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m xiva_source"))
