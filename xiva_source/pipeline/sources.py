"""What the pipeline needs of a feature source: three Protocols, no Feast.

The Feast plugin's ``XivaSource``, ``DwhSource`` and ``CustomerSource`` satisfy these structurally
(no inheritance), so the pipeline stays below the plugin in the import order. Dispatch is on
``source_kind``, a class attribute each source declares::

    source_kind = "xiva" | "dwh" | "customer"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from xiva_source.dwh import TableSpec
    from xiva_source.settings import Settings

__all__ = ["CustomerSourceSpec", "DwhSourceSpec", "PullSource", "XivaSourceSpec", "source_kind"]


class XivaSourceSpec(Protocol):
    """Xiva: every customer changed in the window, through the extractor (no options)."""

    @property
    def source_kind(self) -> Literal["xiva"]:
        """Always ``"xiva"``."""
        ...

    @property
    def name(self) -> str:
        """The source's name (used in messages)."""
        ...


class DwhSourceSpec(Protocol):
    """A DWH table or query, streamed over its timestamp column."""

    @property
    def source_kind(self) -> Literal["dwh"]:
        """Always ``"dwh"``."""
        ...

    @property
    def name(self) -> str:
        """The source's name (used in messages)."""
        ...

    @property
    def spec(self) -> TableSpec:
        """The table or query to read."""
        ...

    @property
    def timestamp_field(self) -> str:
        """The event-timestamp column (renamed ``event_timestamp`` in pulled tables)."""
        ...

    def url(self, settings: Settings) -> str:
        """The SQLAlchemy URL to read (the source's own, else ``DWH_URL``)."""
        ...

    def column_types(self, settings: Settings) -> list[tuple[str, str]]:
        """``(column, type name)`` of the table or query.

        Raises:
            DwhError: The DWH cannot be reached or the table does not exist.
        """
        ...


class CustomerSourceSpec(Protocol):
    """The mode switch: Xiva, the DWH, or both merged, per ``FEATURE_STORE_DATA_SOURCE``."""

    @property
    def source_kind(self) -> Literal["customer"]:
        """Always ``"customer"``."""
        ...

    @property
    def name(self) -> str:
        """The source's name (used in messages)."""
        ...

    @property
    def xiva(self) -> XivaSourceSpec:
        """The Xiva side."""
        ...

    @property
    def dwh(self) -> DwhSourceSpec:
        """The DWH side."""
        ...


PullSource = XivaSourceSpec | DwhSourceSpec | CustomerSourceSpec
"""Any source :func:`~xiva_source.pipeline.pull.pull_batches` reads."""


def source_kind(source: object) -> str | None:
    """The ``source_kind`` of ``source`` (``"xiva"``, ``"dwh"``, ``"customer"``), else ``None``."""
    kind = getattr(source, "source_kind", None)
    return kind if isinstance(kind, str) else None
