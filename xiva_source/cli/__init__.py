"""The command line: one parser tree per console script, one error boundary.

``xiva-source`` (:mod:`xiva_source.cli.xiva`) and ``segmentation``
(:mod:`xiva_source.cli.segmentation`) share their conventions (:mod:`xiva_source.cli.app`) and
their error boundary (:mod:`xiva_source.cli.boundary`). This package is the only place argparse is
used. Kept light: the entry points load on first use (:mod:`xiva_source.lazy`) and the commands
import what they need when they run. Each returns the exit status (0 ok, 1 failure, 2
usage/configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.cli.segmentation import main as segmentation_main
    from xiva_source.cli.simulator import main as simulator_main
    from xiva_source.cli.xiva import main

__all__ = lazy.attach(__name__, __file__)
