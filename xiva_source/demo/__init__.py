"""The end-to-end demo (`make demo`): the simulator, an embedded SQLite DWH and online store.

``run.py`` runs it; ``data.py`` fills a DWH with demo rows for the simulator's customers.
"""
