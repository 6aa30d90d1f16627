"""The newer-wins write script (``write.lua``, loaded once) and the arguments it takes.

One ``EVALSHA`` writes a group of entity hashes: per row it decodes the stored ``_ts:<view>`` (a
protobuf ``Timestamp``) and writes the row's feature cells, its ``_ts:<view>`` and the key's
expiry (``EXPIRE key_ttl_seconds``, as Feast does) when::

    force, or the key has no _ts:<view>, or (seconds, nanos) >= the stored ones

So an older row does not overwrite a newer one (Feast's newer-wins), an equal one does (Feast
skips it: a catch-up after a fallback carries the same timestamps as the partial rows it repairs),
and ``force`` rewrites whatever is stored (a row stamped in the year 9999 included).

The arguments: ``KEYS`` the entity keys (on a cluster, of one hash slot); ``ARGV`` the header
(:func:`script_header`: ``_ts`` field, ttl, force, the feature fields), then per key (rows of
:func:`script_rows`) seconds, nanos, the serialized ``Timestamp``, a mask (empty: every feature
cell follows; else one ``0``/``1`` per feature, and only the known cells follow) and the cells.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import chain
from typing import Any

import numpy as np

from xiva_source.feast_plugin.redis_format.codec import encode_timestamps
from xiva_source.feast_plugin.redis_format.fields import field_name, timestamp_field

__all__ = [
    "WRITE_SCRIPT",
    "WRITE_SCRIPT_SHA",
    "ScriptRows",
    "script_calls",
    "script_header",
    "script_rows",
]

WRITE_SCRIPT: str = (
    resources.files("xiva_source.feast_plugin.redis_format")
    .joinpath("write.lua")
    .read_text(encoding="utf-8")
)
"""The write script's source (``write.lua``, shipped as package data)."""

WRITE_SCRIPT_SHA: str = hashlib.sha1(WRITE_SCRIPT.encode("utf-8")).hexdigest()
"""Its SHA1, the ``EVALSHA`` name Redis knows it by once loaded."""

Header = list[bytes | int | str]


@dataclass(frozen=True)
class ScriptRows:
    """Rows in the script's terms: each row's key and its ``ARGV`` part, in table order.

    Attributes:
        keys: The entity keys.
        args: Per key: seconds, nanos, ``Timestamp``, mask and cells.
    """

    keys: list[bytes]
    args: list[tuple[bytes, ...]]

    def take(self, indexes: Sequence[int]) -> ScriptRows:
        """The rows at ``indexes`` (in that order)."""
        return ScriptRows([self.keys[i] for i in indexes], [self.args[i] for i in indexes])


def script_header(view: str, features: Sequence[str], *, ttl_seconds: int, force: bool) -> Header:
    """The ``ARGV`` head of every call writing ``features`` of ``view`` (stored name).

    Args:
        view: The view's stored name (:func:`~.fields.view_name`).
        features: Its feature names, in the order of the cells of each row.
        ttl_seconds: The key expiry set with each write; 0: none.
        force: Write whatever is stored.
    """
    return [
        timestamp_field(view),
        ttl_seconds,
        "1" if force else "0",
        len(features),
        *(field_name(view, name) for name in features),
    ]


def script_rows(
    keys: list[bytes],
    seconds: np.ndarray,
    nanos: np.ndarray,
    cells: Sequence[np.ndarray],
    nulls: Sequence[bytes],
    *,
    partial: bool = False,
) -> ScriptRows:
    """The rows of a table as the script takes them.

    Args:
        keys: Each row's entity key.
        seconds: Each row's event time, ``Timestamp`` seconds (:func:`~.codec.timestamp_parts`).
        nanos: Its nanos.
        cells: Per feature (header order), each row's cell (:func:`~.codec.encode_column`).
        nulls: Per feature, its null cell.
        partial: Send only the known (non-null) cells of each row; a row without one is left
            out.

    Returns:
        The rows to send.
    """
    secs = seconds.astype("S21").tolist()
    nanos_text = nanos.astype("S21").tolist()
    blobs = encode_timestamps(seconds, nanos)
    columns = [c.tolist() for c in cells]
    if not partial:
        masks = [b""] * len(keys)
        return ScriptRows(keys, list(zip(secs, nanos_text, blobs, masks, *columns, strict=True)))
    known = (
        np.stack([c != null for c, null in zip(cells, nulls, strict=True)], axis=1)
        if cells
        else np.zeros((len(keys), 0), dtype=bool)
    )
    keep = known.any(axis=1)
    mask_bytes = (known.astype(np.uint8) + ord("0")).tobytes()
    width = len(cells)
    out_keys: list[bytes] = []
    out_args: list[tuple[bytes, ...]] = []
    for i in np.flatnonzero(keep).tolist():
        flags = known[i]
        values = [columns[j][i] for j in range(width) if flags[j]]
        mask = mask_bytes[i * width : (i + 1) * width]
        out_keys.append(keys[i])
        out_args.append((secs[i], nanos_text[i], blobs[i], mask, *values))
    return ScriptRows(out_keys, out_args)


def script_calls(header: Header, rows: ScriptRows, rows_per_call: int) -> Iterator[list[Any]]:
    """``EVALSHA`` argument lists writing ``rows``, ``rows_per_call`` rows each."""
    for start in range(0, len(rows.keys), rows_per_call):
        part = rows.keys[start : start + rows_per_call]
        yield [
            "EVALSHA",
            WRITE_SCRIPT_SHA,
            len(part),
            *part,
            *header,
            *chain.from_iterable(rows.args[start : start + rows_per_call]),
        ]
