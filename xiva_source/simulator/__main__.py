"""``python -m xiva_source.simulator``: run the bundled simulator (xiva_source.cli.simulator).

The simulator itself imports nothing of the platform; this entry point is the command line's.
"""

from __future__ import annotations

import sys

from xiva_source.cli import simulator_main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(simulator_main())
