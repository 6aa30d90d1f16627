"""The end-to-end demo (`make demo`): the simulator, an embedded SQLite DWH and online store.

``run.py`` runs it; ``data.py`` fills a DWH with demo rows for the simulator's customers. Names load
on first use (:mod:`xiva_source.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.demo.data import DemoDwh, create_demo_dwh, seed_dwh
    from xiva_source.demo.run import DemoResult, run_demo

__all__ = lazy.attach(__name__, __file__)
