"""``python -m segmentation``."""

from __future__ import annotations

from segmentation.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
