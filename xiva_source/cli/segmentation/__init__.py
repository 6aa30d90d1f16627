"""``segmentation`` / ``python -m segmentation``: JSONLogic segments over the online features.

The same conventions as ``xiva-source`` (:mod:`xiva_source.cli.app`); ``--segments-dir`` and
``--max-age`` are global options of this tree (before or after the command).

One module per concern: :mod:`.common` (global options, store and engine, JSON/percent output),
:mod:`.members` (``validate``, ``list``, ``evaluate``, ``sizes``, ``members``, ``export``,
``refresh``, ``history``), :mod:`.dwh` (their ``--in-dwh`` branches), :mod:`.look` (``preview``,
``overlap``, ``report``), :mod:`.events` (``events``), :mod:`.tree` (the command tree and
:func:`main`). Names load on first use (:mod:`xiva_source.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.cli.segmentation.tree import TREE, main

__all__ = lazy.attach(__name__, __file__)
