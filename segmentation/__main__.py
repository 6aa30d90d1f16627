"""``python -m segmentation``: the ``segmentation`` command line (:mod:`xiva_source.cli`)."""

from __future__ import annotations

import sys

from xiva_source.cli import segmentation_main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(segmentation_main(prog="python -m segmentation"))
