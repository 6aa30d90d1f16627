"""Segments run in the warehouse: :class:`DwhSegments` (sizes, members, export) over the latest
row of every customer, with the ``WHERE`` clauses of :mod:`segmentation.sql.compiler`.

Sizes are counted in one pass for all segments; an export has the same columns as
:meth:`segmentation.engine.SegmentEngine.export` and is written by :mod:`segmentation.export`.

Example:
    >>> dwh = DwhSegments("sqlite:///dwh.sqlite", segments)  # doctest: +SKIP
    >>> dwh.sizes()  # doctest: +SKIP
    {'gold_vip': 120, 'at_risk': 37}
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from segmentation.errors import (
    RuleError,
    UnknownSegmentError,
)
from segmentation.segment import Segment
from xiva_source.dwh.engine import get_engine, sql_error_text
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.schema import UPDATED_AT
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE
from xiva_source.features.catalogue import ENTITY
from xiva_source.redaction import redact_url
from xiva_source.timeutil import as_utc, utc_now

if TYPE_CHECKING:
    import pandas as pd

    from xiva_source.settings import Settings
from segmentation.export import export_target, insert_groups, write_frames
from segmentation.sql.compiler import (
    SqlCompileError,
    SqlFeature,
    _Compiler,
    compile_segment_sql,
    feature_columns,
)

__all__ = ["DwhSegments", "SegmentCounts", "segment_groups"]


def segment_groups(
    segment: Segment, ids: Sequence[str], *, global_control: float = 0.0
) -> list[str]:
    """The group of every member id in ``segment`` (:mod:`segmentation.groups`, pins #1): the
    ``group`` column of an export, computed from the ids alone, so it is the in-memory one.

    Args:
        segment: The segment (its group spec: ``salt``, ``holdout``, ``splits``).
        ids: The member ids.
        global_control: ``SEGMENTS_GLOBAL_CONTROL``.
    """
    return [str(g) for g in segment.groups(list(ids), global_control=global_control)]


@dataclass(frozen=True)
class SegmentCounts:
    """What :meth:`DwhSegments.counts_each` found: the population, the size of every segment
    that ran, and why each other one could not (its problem and fix), in the segments' order."""

    population: int
    sizes: dict[str, int]
    failed: dict[str, str] = field(default_factory=dict)


# What the warehouse says when one segment's SQL cannot run, and what to do about it.
_SEGMENT_FIXES = (
    (
        ("out of range", "overflow", "dataerror"),
        "A rule's arithmetic gives a number too large for the warehouse (a float overflow): "
        "bound it (min/max), or run the segment without --in-dwh, where such a value counts as "
        "missing.",
    ),
    (
        ("number of parameters", "stack depth limit", "too many", "too complex", "too deeply"),
        "The segment is too large to run as one SQL statement (its rules and the segments it "
        "references, inlined): shorten its lists, split it, or run it without --in-dwh.",
    ),
)


def _segment_fix(text: str) -> str | None:
    lowered = text.lower()
    for markers, fix in _SEGMENT_FIXES:
        if any(marker in lowered for marker in markers):
            return fix
    return None


class DwhSegments:
    """Segments evaluated in the warehouse, over the latest row of every customer.

    The latest row is the one with the greatest timestamp (``updated_at``), as the DWH reads of
    the pipeline keep it (:func:`xiva_source.dwh.arrow.latest_per_customer`); the contract's
    ``customer_features_view`` has one row per customer anyway.

    Args:
        url: The warehouse's SQLAlchemy URL (``DWH_URL``).
        segments: The segments (references between them are inlined).
        table: The feature table or view (``schema.table`` allowed).
        timestamp_field: Its timestamp column.
        now: The moment features that age are derived for (default: now, UTC).

    Raises:
        DwhError: The warehouse or the table cannot be read.
    """

    def __init__(
        self,
        url: str,
        segments: Iterable[Segment],
        *,
        table: str = CUSTOMER_FEATURES_TABLE,
        timestamp_field: str = UPDATED_AT,
        now: _dt.datetime | None = None,
    ) -> None:
        self.url = url
        self.engine: Engine = get_engine(url)
        self.dialect = self.engine.dialect.name
        self.table = table
        self.timestamp_field = timestamp_field
        self.now = utc_now() if now is None else as_utc(now)
        self.segments: dict[str, Segment] = {}
        for seg in segments:
            self.segments[seg.name] = seg
        self.types = self._reflect()
        latest = self.latest_rows()
        raw = feature_columns(
            latest,
            self.types,
            dialect=self.dialect,
            now=self.now,
            timestamp_field=timestamp_field,
        )
        # The features computed once per row in a subquery (a rule reads plain columns).
        self.rows: sa.Subquery = sa.select(
            latest.c[ENTITY], *(f.expr.label(n) for n, f in raw.items())
        ).subquery("dwh_features")
        self.features: dict[str, SqlFeature] = {
            n: SqlFeature(n, f.kind, self.rows.c[n], integer=f.integer) for n, f in raw.items()
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, segments: Iterable[Segment], *, now: _dt.datetime | None = None
    ) -> DwhSegments:
        """Over ``settings.dwh_url``'s ``customer_features_view``."""
        return cls(settings.dwh_url, segments, now=now)

    def _fail(self, e: Exception, doing: str) -> DwhError:
        text = sql_error_text(e)
        return DwhError(
            f"{doing} in {redact_url(self.url)!r} failed: {text}",
            hint=_segment_fix(text)
            or f"Check DWH_URL and that the table {self.table!r} exists with the columns of "
            "docs/dwh.md (`xiva-source dwh init --dry-run`).",
        )

    def _reflect(self) -> dict[str, TypeEngine[Any]]:
        schema, _, name = self.table.rpartition(".")
        try:
            inspector = sa.inspect(self.engine)
            columns = inspector.get_columns(name, schema=schema or None)
            key = inspector.get_pk_constraint(name, schema=schema or None)
        except sa.exc.NoSuchTableError as e:
            raise DwhError(
                f"the warehouse {redact_url(self.url)!r} has no table {self.table!r}",
                hint="Create the contract's tables (`xiva-source dwh init`) or point DWH_URL at "
                "the warehouse that has them.",
            ) from e
        except sa.exc.SQLAlchemyError as e:
            raise self._fail(e, f"reading the columns of {self.table!r}") from e
        types = {c["name"]: c["type"] for c in columns}
        # The contract's table has one row per customer (primary key): no ranking needed.
        self.one_row_per_customer = list(key.get("constrained_columns") or []) == [ENTITY]
        for needed in (ENTITY, self.timestamp_field):
            if needed not in types:
                raise DwhError(
                    f"the table {self.table!r} has no column {needed!r}",
                    hint="Give it the columns of the DWH contract (docs/dwh.md).",
                )
        return types

    def latest_rows(self) -> sa.Subquery:
        """The latest row per customer (``ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY
        timestamp DESC) = 1``; the table itself when its primary key is ``customer_id``), every
        column of the table."""
        schema, _, name = self.table.rpartition(".")
        cols = [sa.column(c, t) for c, t in self.types.items()]
        table = sa.table(name, *cols, schema=schema or None)
        if self.one_row_per_customer:
            return sa.select(*table.c).subquery("dwh_latest")
        rank = (
            sa.func.row_number()
            .over(partition_by=table.c[ENTITY], order_by=table.c[self.timestamp_field].desc())
            .label("xiva_row_rank")
        )
        ranked = sa.select(*table.c, rank).subquery("dwh_ranked")
        keep = [ranked.c[c] for c in self.types]
        return sa.select(*keep).where(ranked.c.xiva_row_rank == 1).subquery("dwh_latest")

    def segment(self, name: str) -> Segment:
        """The segment called ``name``.

        Raises:
            UnknownSegmentError: No such segment.
        """
        try:
            return self.segments[name]
        except KeyError as e:
            raise UnknownSegmentError(name, list(self.segments)) from e

    def where(self, name: str) -> ColumnElement[bool]:
        """The segment's ``WHERE`` condition over :attr:`rows` (the features, latest row each).

        Raises:
            SqlCompileError: The segment cannot run in SQL (the message names the operator).
        """
        return compile_segment_sql(
            self.segment(name), self.features, dialect=self.dialect, segments=self.segments
        )

    def _key(self) -> ColumnElement[Any]:
        # A PostgreSQL UUID is read as text (the entity key is a string everywhere).
        return sa.cast(self.rows.c[ENTITY], sa.String)

    def sizes(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """Every segment's size (or those named), computed in one pass over the warehouse.

        Raises:
            SqlCompileError: A segment cannot run in SQL.
            DwhError: The query failed.
        """
        return self.counts(names)[1]

    def counts(self, names: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        """The population and every segment's size (or those named), in one pass.

        Raises:
            SqlCompileError: A segment cannot run in SQL.
            DwhError: The query failed.
        """
        return self._counts(list(self.segments if names is None else names))

    def _counts(
        self, chosen: list[str], doing: str = "counting the segments"
    ) -> tuple[int, dict[str, int]]:
        conds = [self.where(n) for n in chosen]
        counts = [
            sa.func.coalesce(sa.func.sum(sa.case((c, 1), else_=0)), 0).label(f"s{i}")
            for i, c in enumerate(conds)
        ]
        stmt = sa.select(sa.func.count().label("population"), *counts).select_from(self.rows)
        row = self._run(stmt, doing)[0]
        return int(row[0]), {n: int(row[i + 1]) for i, n in enumerate(chosen)}

    def counts_each(self, names: Sequence[str] | None = None) -> SegmentCounts:
        """As :meth:`counts`, but one segment that cannot run does not stop the others.

        A segment that does not compile to SQL, or whose SQL the warehouse refuses (a float
        overflow, a statement too large: more than 65,535 parameters once its references are
        inlined), is left out and named in :attr:`SegmentCounts.failed` with its reason. The
        others are counted in one pass; when that pass fails, each is counted on its own.

        Raises:
            DwhError: The warehouse itself cannot be read (the population cannot be counted).
        """
        chosen = list(self.segments if names is None else names)
        failed: dict[str, str] = {}
        runnable: list[str] = []
        for name in chosen:
            try:
                self.where(name)
            except RuleError as e:
                failed[name] = str(e)
            else:
                runnable.append(name)
        try:
            population, sizes = self.counts(runnable)
            return SegmentCounts(population, sizes, failed)
        except (DwhError, RuleError):  # one segment's SQL, or all of them at once: each alone
            pass
        population = self.population()
        sizes = {}
        for name in runnable:
            try:
                sizes[name] = self._counts([name], f"counting segment {name!r}")[1][name]
            except (DwhError, RuleError) as e:
                failed[name] = str(e)
        order = {name: i for i, name in enumerate(chosen)}
        return SegmentCounts(
            population, sizes, dict(sorted(failed.items(), key=lambda kv: order[kv[0]]))
        )

    def population(self) -> int:
        """How many customers the warehouse has (one latest row each)."""
        stmt = sa.select(sa.func.count()).select_from(self.rows)
        return int(self._run(stmt, "counting the customers")[0][0])

    def members(self, name: str) -> list[str]:
        """The segment's members, sorted (as :meth:`SegmentEngine.members` sorts them).

        Raises:
            SqlCompileError: The segment cannot run in SQL.
            DwhError: The query failed.
        """
        stmt = sa.select(self._key()).where(self.where(name))
        return sorted(str(r[0]) for r in self._run(stmt, f"selecting the members of {name!r}"))

    def member_frame(self, name: str, *, with_features: bool = False) -> pd.DataFrame:
        """The members as a DataFrame: ``customer_id`` (sorted), then with ``with_features`` the
        segment's features in name order, valued as the online store serves them (numbers as
        float, features that age as of :attr:`now`).

        Raises:
            SqlCompileError: The segment (or one of its features) cannot run in SQL.
            DwhError: The query failed.
        """
        import pandas as pd

        where = self.where(name)
        feats = sorted(self.segment(name).features) if with_features else []
        cols = [self._key().label(ENTITY)]
        for f in feats:
            feat = self.features.get(f)
            if feat is None:
                _Compiler(self.features, self.dialect, None, ()).feature(f, "$")
            assert feat is not None
            cols.append(feat.expr.label(f))
        stmt = sa.select(*cols).where(where)
        rows = [tuple(r) for r in self._run(stmt, f"selecting the members of {name!r}")]
        frame = pd.DataFrame.from_records(rows, columns=[ENTITY, *feats])
        frame[ENTITY] = frame[ENTITY].astype(object).map(str)
        for f in feats:
            if self.features[f].kind == "num":
                values = pd.to_numeric(frame[f], errors="coerce").astype("float64")
                frame[f] = values.astype("Int64") if self.features[f].integer else values
        return frame.sort_values(ENTITY, kind="stable").reset_index(drop=True)

    def export(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        with_features: bool = False,
        groups: Any = None,
    ) -> int:
        """Write the members to ``*.csv`` or ``*.parquet`` (the columns of the in-memory export).

        Args:
            name: The segment.
            path: The file (by suffix).
            with_features: Add the segment's feature columns.
            groups: A function ``(segment, ids) -> group names`` adding a ``group`` column (the
                in-memory export's), or ``None`` for none.

        Returns:
            The number of members written.

        Raises:
            SegmentationError: The suffix is neither ``.csv`` nor ``.parquet``.
        """
        target = export_target(path)
        frame = self.member_frame(name, with_features=with_features)
        if groups is not None:
            insert_groups(frame, groups(self.segment(name), list(frame[ENTITY])))
        write_frames(target, [frame])
        return len(frame)

    def _run(self, stmt: sa.Executable, doing: str) -> Any:
        try:
            with self.engine.connect() as conn:
                return conn.execute(stmt).all()
        except sa.exc.SQLAlchemyError as e:
            raise self._fail(e, doing) from e
        except RecursionError as e:  # SQLAlchemy writes SQL recursively: deep arithmetic
            raise SqlCompileError(
                f"{doing}: the rules are nested too deeply to be written as SQL",
                "flatten the arithmetic (+, *, min and max take many arguments), or run the "
                "segment without --in-dwh",
            ) from e
