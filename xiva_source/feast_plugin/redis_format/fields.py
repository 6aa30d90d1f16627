"""Hash fields: where a feature view's values and event timestamp live in an entity's hash.

``murmur3_32("<view>:<feature>")`` (4 bytes, Feast's ``_mmh3``) holds a feature's serialized
protobuf ``Value``; ``_ts:<view>`` holds the view's event timestamp (a serialized protobuf
``Timestamp``). ``<view>`` is the name Feast stores: ``<name>_v<N>`` when online view versioning
is on (Feast's ``compute_versioned_name``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

__all__ = ["field_name", "timestamp_field", "view_name"]


def field_name(view: str, feature: str) -> bytes:
    """The hash field of ``feature`` of ``view``: murmur3_32 of ``"<view>:<feature>"``.

    Feast's ``_mmh3`` (the unsigned hash, little-endian), computed here with the same ``mmh3``
    package so that reading needs no Feast SDK import; the tests compare it with Feast's.
    """
    import mmh3

    return struct.pack("<Q", mmh3.hash(f"{view}:{feature}", signed=False))[:4]


def timestamp_field(view: str) -> bytes:
    """The hash field holding ``view``'s event timestamp: ``_ts:<view>``."""
    return f"_ts:{view}".encode()


def view_name(feature_view: Any, config: RepoConfig | Any) -> str:
    """The view name Feast stores (``<name>_v<N>`` when online view versioning is on)."""
    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    if not versioning:  # compute_versioned_name's answer then, without importing Feast
        return str(feature_view.name)
    from feast.infra.online_stores.helpers import compute_versioned_name

    return str(compute_versioned_name(feature_view, versioning))
