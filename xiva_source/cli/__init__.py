"""The command line: one parser tree per console script, one error boundary.

``xiva-source`` (:mod:`xiva_source.cli.xiva`) and ``segmentation``
(:mod:`xiva_source.cli.segmentation`) share their conventions (:mod:`xiva_source.cli.app`) and
their error boundary (:mod:`xiva_source.cli.boundary`). This package is the only place argparse is
used. Kept light: the commands import what they need when they run.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main", "segmentation_main", "simulator_main"]


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """``xiva-source``; returns the exit status (0 ok, 1 failure, 2 usage/configuration)."""
    from xiva_source.cli.xiva import main as run

    return run(argv, prog=prog)


def segmentation_main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """``segmentation``; returns the exit status (0 ok, 1 failure, 2 usage/configuration)."""
    from xiva_source.cli.segmentation import main as run

    return run(argv, prog=prog)


def simulator_main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """``python -m xiva_source.simulator``; returns the exit status."""
    from xiva_source.cli.simulator import SIMULATOR_PROG
    from xiva_source.cli.simulator import main as run

    return run(argv, prog=prog or SIMULATOR_PROG)
