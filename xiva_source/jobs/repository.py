"""The Feast repository a materialization run works on: its store, its views, its online store."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from xiva_source.jobs.errors import MaterializationConfigError
from xiva_source.redaction import redact

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.infra.online_stores.online_store import OnlineStore

__all__ = ["load_store", "new_online_store", "select_views"]


def load_store(repo_path: str | os.PathLike[str]) -> FeatureStore:
    """The repository's ``FeatureStore``.

    Raises:
        MaterializationConfigError: No or a broken ``feature_store.yaml`` (exit 2).
    """
    from feast import FeatureStore

    path = Path(repo_path)
    if not (path / "feature_store.yaml").is_file():
        raise MaterializationConfigError(
            f"No feature_store.yaml in {str(path)!r}.",
            "pass --repo with the Feast repository directory (default: feature_repo), "
            "run from the project root, then `make apply`.",
        )
    try:
        return FeatureStore(repo_path=str(path))
    except Exception as e:  # Feast raises many types for a bad yaml
        raise MaterializationConfigError(
            f"{path / 'feature_store.yaml'} cannot be loaded: {redact(str(e))}",
            "correct feature_store.yaml (see feature_repo/feature_store.yaml).",
        ) from e


def select_views(store: FeatureStore, names: Iterable[str] | None) -> list[FeatureView]:
    """The named views (default: every view of the project that has a batch source), each with
    a batch source.

    A view without a source (``customer_segments``: memberships the segmentation writes itself)
    is nothing to materialize: left out by default, refused when named.

    Raises:
        MaterializationConfigError: No views, an unknown name, or a view without a source.
    """
    try:
        all_views = {fv.name: fv for fv in store.list_feature_views(allow_cache=False)}
    except Exception as e:
        raise MaterializationConfigError(
            f"The registry of project {store.project!r} cannot be read: {redact(str(e))}",
            "run `make apply` (feast apply) first.",
        ) from e
    if not all_views:
        raise MaterializationConfigError(
            f"Project {store.project!r} has no feature views in its registry.",
            "run `make apply` (feast apply) first.",
        )
    wanted = (
        list(names)
        if names is not None
        else sorted(n for n, fv in all_views.items() if fv.batch_source is not None)
    )
    unknown = [name for name in wanted if name not in all_views]
    if unknown:
        raise MaterializationConfigError(
            f"Unknown feature view(s): {', '.join(unknown)}.",
            f"use one of: {', '.join(sorted(all_views))}.",
        )
    selected = [all_views[name] for name in wanted]
    missing_source = [fv.name for fv in selected if fv.batch_source is None]
    if missing_source:
        raise MaterializationConfigError(
            f"Feature view(s) without a batch source: {', '.join(missing_source)}.",
            "give them a batch source or leave them out with --view.",
        )
    return selected


def new_online_store(store: FeatureStore) -> OnlineStore:
    """A fresh instance of the repository's online store (the run's own)."""
    from feast.infra.online_stores.helpers import get_online_store_from_config

    return get_online_store_from_config(store.config.online_store)
