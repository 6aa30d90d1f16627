"""Compatibility: registries written before the re-layout name the data sources by this path.

A registry stores each custom data source by class path (``xiva_source.sources.XivaSource``); this
module keeps those registries loadable without ``feast apply``. New code imports
:mod:`xiva_source.feast_plugin.sources`.
"""

from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource

__all__ = ["CustomerSource", "DwhSource", "XivaSource"]
