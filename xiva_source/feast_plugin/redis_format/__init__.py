"""Feast's Redis storage format: the one place that knows it (pure functions, no I/O).

Feast (0.67) stores one Redis hash per entity, shared by every feature view of that entity::

    key    = serialize_entity_key(entity key, entity_key_serialization_version) + project
    fields = murmur3_32("<view>:<feature>")  -> a serialized protobuf ``Value``
             "_ts:<view>"                     -> a serialized protobuf ``Timestamp``

and, as Feast's own ``online_write_batch`` does, a row replaces the stored one only when it is
not older (here in one Lua script per group of rows, equal rows included).

- :mod:`.keys`: entity keys (``RedisLayout``: build, ``SCAN`` pattern, exact check, ids back);
- :mod:`.fields`: hash field names (``field_name``, ``timestamp_field``, ``view_name``);
- :mod:`.codec`: the cells: feature values encoded column-wise and decoded, null cells,
  ``_ts:<view>`` timestamps;
- :mod:`.script`: the newer-wins write script (``write.lua``) and its arguments.

Everything that reads or writes Feast's hashes goes through here (the bulk writer, the job's
expiry and status, segmentation's reader and served memberships); sending and scanning live beside
it (:mod:`xiva_source.feast_plugin.bulk_send`, :mod:`xiva_source.feast_plugin.redis_scan`). Keys
and field names come from Feast's own helpers, and every fast path is checked against them, so a
change of format in Feast fails loudly instead of reading nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.feast_plugin.redis_format.codec import (
        column_array,
        decode_cells,
        decode_timestamp,
        decode_timestamps,
        decode_value,
        encode_column,
        encode_string_list,
        encode_timestamp,
        encode_timestamps,
        fast_double,
        timestamp_parts,
    )
    from xiva_source.feast_plugin.redis_format.fields import field_name, timestamp_field, view_name
    from xiva_source.feast_plugin.redis_format.keys import RedisLayout, glob_escape
    from xiva_source.feast_plugin.redis_format.script import (
        WRITE_SCRIPT,
        WRITE_SCRIPT_SHA,
        ScriptRows,
        script_calls,
        script_header,
        script_rows,
    )

__all__ = lazy.attach(__name__, __file__)
