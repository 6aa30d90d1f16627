"""Segments in the warehouse: a segment's rules compiled to a SQLAlchemy ``WHERE`` clause.

The DWH (PostgreSQL or SQLite) answers "who is in this segment" itself, over the latest row of
every customer of its feature table (``customer_features_view`` by default), with the members the
in-memory path (:mod:`segmentation.vectorized`) would find over the same values:

- **Columns are features.** A rule's ``var`` names an online feature; the column of that name is
  read. Text columns are strings, integer and decimal columns are numbers (``CAST(... AS FLOAT)``,
  as the online path reads them as float64; PostgreSQL's ``NaN`` is missing, as pandas' is). Date,
  timestamp and boolean columns, and features the table does not have, are refused by name.
- **Features that age** (``last_purchase_days_ago``, ``age``): the DWH holds them as counts true at
  the row's ``updated_at``; online they are derived from the facts behind the counts as of now
  (:mod:`xiva_source.dwh.facts`, :mod:`xiva_source.features.derived`). They are compiled the same
  way, relative to an injected ``now``: days are ``count + (now's date - updated_at's date)``; an
  age is recomputed from the latest birth date consistent with the count (29 February -> 28 in a
  common year), birthday rule included; a negative count, or a fact after ``now``, is missing.
- **Null semantics are the in-memory ones.** A missing value never satisfies a comparison (``!=``
  included) and arithmetic on it is missing. Every predicate compiles to a two-valued expression
  (``COALESCE(p, false)``) before it is combined, so SQL's three-valued logic cannot leak through
  ``NOT``/``!=``: ``{"!": {"==": [{"var": "city"}, "Paris"]}}`` holds for a customer whose city is
  missing, as it does in memory.
- **What cannot compile is refused**, with the operator (or feature) that stopped it
  (:class:`SqlCompileError`): ``cat``, ``substr``, ``%``, ``<`` over text, ``==`` between a number
  and a text, ``in`` over a text (a substring test)... Such a segment runs in memory only.
- **Segment references** (``{"segment": "other"}``: eligible in ``other``) are inlined: the other
  segment's rules are compiled in place (a cycle is refused).

:class:`segmentation.sql.warehouse.DwhSegments` runs the compiled segments.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from segmentation.errors import (
    RuleError,
    SegmentCycleError,
    UnknownSegmentReferenceError,
)
from segmentation.evaluator import evaluate_segment_value, truthy
from segmentation.segment import Segment
from xiva_source.dwh.schema import UPDATED_AT, type_family
from xiva_source.features.catalogue import DERIVED_FEATURES, ENTITY
from xiva_source.timeutil import as_utc

if TYPE_CHECKING:
    pass

__all__ = [
    "SqlCompileError",
    "SqlFeature",
    "compile_rule_sql",
    "compile_segment_sql",
    "feature_columns",
]

_IN_MEMORY_FIX = (
    "run this segment without --in-dwh (the in-memory path evaluates every operator), or rewrite "
    "the rule with the operators that run in SQL (docs/segmentation.md, 'Segments in the DWH')"
)


class SqlCompileError(RuleError):
    """A segment rule that cannot run in the warehouse: names the operator (or feature) that
    stopped it.

    Args:
        reason: What cannot compile, naming the operator or the feature.
        fix: What to do (default: evaluate in memory, or rewrite the rule).
        operator: The operator that stopped the compilation (``None`` for a feature problem).
        feature: The feature that stopped it (``None`` for an operator problem).
    """

    def __init__(
        self,
        reason: str,
        fix: str = _IN_MEMORY_FIX,
        *,
        operator: str | None = None,
        feature: str | None = None,
        segment: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        self.operator = operator
        self.feature = feature
        super().__init__(reason, fix, segment=segment, rule=rule, path=path)

    def located(self, *, segment: str | None = None, rule: str | None = None) -> SqlCompileError:
        """The same error, with the segment and rule names filled in."""
        return SqlCompileError(
            self.reason,
            self.fix,
            operator=self.operator,
            feature=self.feature,
            segment=segment or self.segment,
            rule=rule or self.rule,
            path=self.path,
        )


def _op_error(op: str, why: str, path: str) -> SqlCompileError:
    return SqlCompileError(f"operator {op!r} cannot run in SQL: {why}", operator=op, path=path)


# --- features as SQL columns ----------------------------------------------------------------------


@dataclass(frozen=True)
class SqlFeature:
    """One feature as a SQL expression over the latest-rows subquery.

    Attributes:
        name: The feature's name.
        kind: ``"num"`` (a float expression, NULL = missing) or ``"str"`` (text, NULL = missing).
        expr: The expression.
        integer: Whole numbers (an integer column, or a feature that ages): exported as
            integers, as the online store serves them.
    """

    name: str
    kind: str
    expr: ColumnElement[Any]
    integer: bool = False


_DATE_DIALECTS = frozenset({"postgresql", "sqlite"})


def _not_nan(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    # PostgreSQL floats and numerics hold NaN (pandas' missing value; NaN = NaN is true there).
    if dialect == "postgresql":
        return sa.func.nullif(expr, sa.literal(math.nan, sa.Float), type_=sa.Float)
    return expr


def _year_month_day(ts: ColumnElement[Any]) -> tuple[Any, Any, Any]:
    year, month, day = (sa.cast(sa.extract(p, ts), sa.Integer) for p in ("year", "month", "day"))
    return year, month, day


def _days_since(ts: ColumnElement[Any], today: _dt.date, dialect: str) -> ColumnElement[Any]:
    """Whole days from ``ts``'s (UTC) date to ``today``."""
    if dialect == "sqlite":
        return sa.cast(
            sa.func.julianday(today.isoformat()) - sa.func.julianday(sa.func.date(ts)), sa.Integer
        )
    return sa.cast(sa.literal(today, sa.Date) - sa.cast(ts, sa.Date), sa.Integer)  # PostgreSQL


def _derived_expr(
    name: str, count: ColumnElement[Any], ts: ColumnElement[Any], now: _dt.datetime, dialect: str
) -> ColumnElement[Any]:
    """The derived feature ``name`` as of ``now``, from its DWH count true at ``ts``."""
    today = as_utc(now).date()
    if DERIVED_FEATURES[name].unit == "days":
        value = count + _days_since(ts, today, dialect)
        return sa.case((sa.and_(count >= 0, value >= 0), sa.cast(value, sa.Float)), else_=None)
    year_t, month, day_t = _year_month_day(ts)
    year = year_t - count
    leap = sa.and_(year % 4 == 0, sa.or_(year % 100 != 0, year % 400 == 0))
    day = sa.case((sa.and_(month == 2, day_t == 29, sa.not_(leap)), 28), else_=day_t)
    born = year * 10000 + month * 100 + day
    today_key = today.year * 10000 + today.month * 100 + today.day
    ahead = sa.case((today.month * 100 + today.day < month * 100 + day, 1), else_=0)
    age = sa.cast(today.year - year - ahead, sa.Float)
    # pandas' calendar starts on 1677-09-22 (a midnight): an earlier birth date is missing there.
    valid = sa.and_(count >= 0, born >= 16770922, born <= today_key)
    return sa.case((valid, age), else_=None)


def feature_columns(
    source: sa.FromClause,
    types: Mapping[str, TypeEngine[Any]],
    *,
    dialect: str,
    now: _dt.datetime,
    timestamp_field: str = UPDATED_AT,
) -> dict[str, SqlFeature]:
    """The features a rule can read in the warehouse, as SQL expressions over ``source``.

    Args:
        source: The latest row per customer (see :meth:`DwhSegments.latest_rows`).
        types: Column name -> SQL type (reflected).
        dialect: ``postgresql`` or ``sqlite``.
        now: The moment features that age are derived for (online: now).
        timestamp_field: The column the DWH's counts were true at.

    Returns:
        Feature name -> :class:`SqlFeature`; columns of other types (dates, booleans) are left
        out, so a rule reading them is refused by name.
    """
    out: dict[str, SqlFeature] = {}
    for name, sql_type in types.items():
        if name in (ENTITY, timestamp_field):
            continue
        family = type_family(sql_type)
        col = source.c[name]
        if name in DERIVED_FEATURES:  # date arithmetic written for PostgreSQL and SQLite
            if family == "integer" and dialect in _DATE_DIALECTS:
                ts = source.c[timestamp_field]
                expr = _derived_expr(name, col, ts, now, dialect)
                out[name] = SqlFeature(name, "num", expr, integer=True)
            continue
        if family == "text":
            out[name] = SqlFeature(name, "str", col)
        elif family == "integer":
            out[name] = SqlFeature(name, "num", sa.cast(col, sa.Float), integer=True)
        elif family == "decimal":
            out[name] = SqlFeature(name, "num", _not_nan(sa.cast(col, sa.Float), dialect))
    return out


# --- the compiler ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sql:
    kind: str  # "const" | "bool" (two-valued) | "truth" (two-valued, truth only) | "num" | "str"
    expr: Any  # a SQL expression, or the constant
    # An arithmetic result not yet checked for infinities: + - * pass them on (they stay
    # non-finite or become NaN/NULL), so only the value's consumer checks, once.
    raw: bool = False


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _uses_data(node: Any) -> bool:
    if isinstance(node, dict):
        op, args = next(iter(node.items()))
        return op in ("var", "missing", "missing_some", "segment") or _uses_data(args)
    if isinstance(node, list | tuple):
        return any(_uses_data(x) for x in node)
    return False


def _two_valued(predicate: ColumnElement[Any]) -> ColumnElement[bool]:
    """``predicate`` with NULL (unknown) as false: safe under NOT, AND, OR."""
    return sa.func.coalesce(predicate, sa.false(), type_=sa.Boolean)


def _describe(v: _Sql) -> str:
    if v.kind == "const":
        return "null" if v.expr is None else f"the literal {v.expr!r}"
    return {
        "num": "a number",
        "str": "a text",
        "bool": "a true/false value",
        "truth": "a missing-test",
    }[v.kind]


class _Compiler:
    def __init__(
        self,
        features: Mapping[str, SqlFeature],
        dialect: str,
        segments: Mapping[str, Segment] | None,
        stack: tuple[str, ...],
    ) -> None:
        self.features = features
        self.dialect = dialect
        self.segments = segments
        self.stack = stack

    # --- conversions ----------------------------------------------------------------------
    def truth_of(self, v: _Sql) -> ColumnElement[bool]:
        if v.kind == "const":
            return sa.true() if truthy(v.expr) else sa.false()
        if v.kind in ("bool", "truth"):
            return v.expr  # type: ignore[no-any-return]
        if v.kind == "num":
            return _two_valued(self.num(v, "!!", "$") != 0)
        return _two_valued(v.expr != "")

    def num(self, v: _Sql, op: str, path: str, *, raw: bool = False) -> ColumnElement[Any]:
        """A numeric operand; ``raw``: an unchecked arithmetic result may stay unchecked."""
        if v.kind == "num":
            return v.expr if raw or not v.raw else self.finite(v.expr)  # type: ignore[no-any-return]
        if v.kind == "const" and v.expr is None:
            return sa.cast(sa.null(), sa.Float)
        if v.kind == "const" and _is_num(v.expr):
            return sa.literal(float(v.expr), sa.Float)
        raise _op_error(op, f"it takes numbers here, got {_describe(v)}", path)

    def string(self, v: _Sql, op: str, path: str) -> ColumnElement[Any]:
        if v.kind == "str":
            return v.expr  # type: ignore[no-any-return]
        if v.kind == "const" and isinstance(v.expr, str):
            return sa.literal(v.expr, sa.String)
        raise _op_error(op, f"it takes texts here, got {_describe(v)}", path)

    def finite(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        """A computed number that is not finite is missing (as in memory)."""
        # NULLIF names ``expr`` once: nested arithmetic stays linear in SQL text.
        guarded = sa.func.nullif(expr, sa.literal(math.inf, sa.Float), type_=sa.Float)
        guarded = sa.func.nullif(guarded, sa.literal(-math.inf, sa.Float), type_=sa.Float)
        return _not_nan(guarded, self.dialect)

    # --- compilation ----------------------------------------------------------------------
    def truth(self, node: Any, path: str) -> ColumnElement[bool]:
        """The node's JsonLogic truth, as a two-valued SQL boolean."""
        if not isinstance(node, dict) or not _uses_data(node):
            return self.truth_of(self.value(node, path))
        op, raw = next(iter(node.items()))
        args = list(raw) if isinstance(raw, list | tuple) else [raw]
        here = f"{path}.{op}"
        if op in ("and", "or"):
            # In a truth context the value an and/or returns is truthy iff all/any of its
            # arguments are: no need for the values themselves.
            parts = [self.truth(a, f"{here}[{i}]") for i, a in enumerate(args)]
            return sa.and_(*parts) if op == "and" else sa.or_(*parts)
        if op in ("!", "!!"):
            inner = self.truth(args[0], f"{here}[0]")
            return sa.not_(inner) if op == "!" else inner
        if op in ("if", "?:"):
            if len(args) == 1:
                return self.truth(args[0], f"{here}[0]")
            whens = [
                (self.truth(args[i], f"{here}[{i}]"), self.truth(args[i + 1], f"{here}[{i + 1}]"))
                for i in range(0, len(args) - 1, 2)
            ]
            last = self.truth(args[-1], f"{here}[{len(args) - 1}]") if len(args) % 2 else sa.false()
            return sa.case(*whens, else_=last)
        return self.truth_of(self.value(node, path))

    def value(self, node: Any, path: str) -> _Sql:
        if not isinstance(node, dict):
            return _Sql("const", node)
        op, raw = next(iter(node.items()))
        args = list(raw) if isinstance(raw, list | tuple) else [raw]
        here = f"{path}.{op}"
        if not _uses_data(node):
            return _Sql("const", evaluate_segment_value(node, {}))
        if op == "var":
            return self.var(args, here)
        if op in ("missing", "missing_some"):
            return self.missing(op, args, here)
        if op == "segment":
            return _Sql("bool", self.reference(args[0], here))
        if op in ("!", "!!", "and", "or") or (op in ("if", "?:") and self._boolean_if(args, here)):
            if op in ("and", "or"):
                subs = [self.value(a, f"{here}[{i}]") for i, a in enumerate(args)]
                if not all(_is_boolean(s) for s in subs):
                    raise _op_error(
                        op,
                        "over values that are not all true/false it returns one of the values "
                        "(only its truth can run in SQL: use it directly as a condition, or "
                        "under '!!')",
                        here,
                    )
            return _Sql("bool", self.truth(node, path))
        if op in ("if", "?:"):
            return self.if_value(args, here)
        if op in ("==", "===", "!=", "!=="):
            return _Sql("bool", self.equality(op, args, here))
        if op in ("<", "<=", ">", ">="):
            return _Sql("bool", self.compare(op, args, here))
        if op == "in":
            return _Sql("bool", self.in_(args, here))
        if op in ("+", "-", "*", "/", "min", "max"):
            return _Sql("num", self.arithmetic(op, args, here), raw=True)
        reasons = {
            "%": "SQL's remainder differs from JsonLogic's for negative numbers and floats",
            "cat": "strings built per row are not compiled to SQL",
            "substr": "strings built per row are not compiled to SQL",
        }
        raise _op_error(op, reasons.get(op, "it has no SQL implementation"), here)

    def feature(self, name: str, path: str) -> SqlFeature:
        try:
            return self.features[name]
        except KeyError:
            derived = DERIVED_FEATURES.get(name)
            why = (
                f"feature {name!r} is not a number or text column of the warehouse table"
                if derived is None
                else f"feature {name!r} needs the integer count column {name!r} in the "
                "warehouse table (and a PostgreSQL or SQLite warehouse)"
            )
            raise SqlCompileError(
                f"{why}, so it cannot be read in SQL",
                "evaluate this segment in memory (without --in-dwh), or add the column to the "
                "warehouse table (docs/dwh.md)",
                feature=name,
                path=path,
            ) from None

    def var(self, args: list[Any], here: str) -> _Sql:
        feat = self.feature(args[0], here)
        default = args[1] if len(args) > 1 else None
        if default is None:
            return _Sql(feat.kind, feat.expr)
        if feat.kind == "num" and _is_num(default):
            return _Sql("num", sa.func.coalesce(feat.expr, float(default), type_=sa.Float))
        if feat.kind == "str" and isinstance(default, str):
            return _Sql("str", sa.func.coalesce(feat.expr, default, type_=sa.String))
        raise _op_error(
            "var", f"the default {default!r} is not of the type of feature {args[0]!r}", here
        )

    def missing(self, op: str, args: list[Any], here: str) -> _Sql:
        names = args[1] if op == "missing_some" else args
        if op == "missing" and len(args) == 1 and isinstance(args[0], list):
            names = args[0]
        conds: list[ColumnElement[bool]] = []
        for name in names:
            feat = self.feature(name, here)
            absent: ColumnElement[bool] = feat.expr.is_(None)
            if feat.kind == "str":
                absent = sa.or_(absent, feat.expr == "")
            conds.append(absent)
        if not conds:
            return _Sql("truth", sa.false())
        if op == "missing":
            return _Sql("truth", sa.or_(*conds))
        count = sum((sa.case((c, 1), else_=0) for c in conds[1:]), sa.case((conds[0], 1), else_=0))
        need = float(args[0])
        return _Sql("truth", sa.and_(len(conds) - count < need, count > 0))

    def reference(self, name: Any, here: str) -> ColumnElement[bool]:
        if self.segments is None:
            raise _op_error(
                "segment",
                "the segments it references were not given to the compiler",
                here,
            )
        if name not in self.segments:
            raise UnknownSegmentReferenceError(str(name), list(self.segments), path=here)
        if name in self.stack:
            cycle = [*self.stack[self.stack.index(name) :], name]
            raise SegmentCycleError(cycle, path=here)
        inner = _Compiler(self.features, self.dialect, self.segments, (*self.stack, name))
        return sa.and_(*(inner.truth(r.rule, "$") for r in self.segments[name].rules))

    def _boolean_if(self, args: list[Any], here: str) -> bool:
        if len(args) % 2 == 0:
            return False
        branches = [args[i] for i in range(1, len(args), 2)] + [args[-1]]
        return all(_is_boolean(self.value(b, here)) for b in branches)

    def if_value(self, args: list[Any], here: str) -> _Sql:
        if len(args) == 1:
            return self.value(args[0], f"{here}[0]")
        conds = [self.truth(args[i], f"{here}[{i}]") for i in range(0, len(args) - 1, 2)]
        branches = [self.value(args[i], f"{here}[{i}]") for i in range(1, len(args), 2)]
        branches.append(
            self.value(args[-1], f"{here}[{len(args) - 1}]")
            if len(args) % 2
            else _Sql("const", None)
        )
        kinds = {b.kind for b in branches if b.kind != "const"}
        consts = [b.expr for b in branches if b.kind == "const"]
        if kinds <= {"num"} and all(c is None or _is_num(c) for c in consts):
            vals = [self.num(b, "if", here) for b in branches]
            kind = "num"
        elif kinds <= {"str"} and all(c is None or isinstance(c, str) for c in consts):
            vals = [
                sa.cast(sa.null(), sa.String)
                if b.kind == "const" and b.expr is None
                else self.string(b, "if", here)
                for b in branches
            ]
            kind = "str"
        else:
            raise _op_error(
                "if", "its branches mix types (only numbers, or only texts, compile to SQL)", here
            )
        return _Sql(kind, sa.case(*zip(conds, vals[:-1], strict=True), else_=vals[-1]))

    def equality(self, op: str, args: list[Any], here: str) -> ColumnElement[bool]:
        a, b = (self.value(x, f"{here}[{i}]") for i, x in enumerate(args))
        if any(v.kind == "const" and v.expr is None for v in (a, b)):
            return sa.false()  # a comparison with a missing operand is false, != included
        numeric = all(v.kind == "num" or (v.kind == "const" and _is_num(v.expr)) for v in (a, b))
        texts = all(
            v.kind == "str" or (v.kind == "const" and isinstance(v.expr, str)) for v in (a, b)
        )
        if numeric:
            x, y = self.num(a, op, here), self.num(b, op, here)
        elif texts:
            x, y = self.string(a, op, here), self.string(b, op, here)
        else:
            raise _op_error(
                op,
                f"it compares {_describe(a)} with {_describe(b)} (JsonLogic's type coercion "
                "is not compiled; compare numbers with numbers, texts with texts)",
                here,
            )
        return _two_valued(x != y if op in ("!=", "!==") else x == y)

    def compare(self, op: str, args: list[Any], here: str) -> ColumnElement[bool]:
        subs = [self.value(x, f"{here}[{i}]") for i, x in enumerate(args)]
        if any(v.kind == "const" and v.expr is None for v in subs):
            return sa.false()
        vals = [self.num(v, op, here) for v in subs]
        fns = {
            "<": lambda x, y: x < y,
            "<=": lambda x, y: x <= y,
            ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y,
        }
        fn = fns[op]
        parts = [fn(vals[i], vals[i + 1]) for i in range(len(vals) - 1)]
        return _two_valued(sa.and_(*parts))

    def in_(self, args: list[Any], here: str) -> ColumnElement[bool]:
        needle = self.value(args[0], f"{here}[0]")
        hay = self.value(args[1], f"{here}[1]")
        if hay.kind != "const" or not isinstance(hay.expr, list):
            raise _op_error(
                "in", "only a literal list compiles (a text container is a substring test)", here
            )
        items = hay.expr
        if needle.kind == "str" and all(isinstance(i, str) for i in items):
            if not items:
                return sa.false()
            return _two_valued(needle.expr.in_(items))
        if needle.kind == "num" and all(_is_num(i) for i in items):
            if not items:
                return sa.false()
            return _two_valued(self.num(needle, "in", here).in_([float(i) for i in items]))
        raise _op_error(
            "in",
            f"it looks for {_describe(needle)} in a list of other types (compare numbers with "
            "numbers, texts with texts)",
            here,
        )

    def arithmetic(self, op: str, args: list[Any], here: str) -> ColumnElement[Any]:
        """``op``'s result, unchecked for infinities (see :attr:`_Sql.raw`)."""
        subs = [self.value(x, f"{here}[{i}]") for i, x in enumerate(args)]
        # An infinite operand is missing in memory: a divisor, or min/max (which would pick a
        # finite value over it), must be checked; + - * and a dividend pass it on.
        passes = op in ("+", "-", "*")
        a = [
            self.num(v, op, here, raw=passes or (op == "/" and i == 0)) for i, v in enumerate(subs)
        ]
        out: ColumnElement[Any]
        if op == "+":
            out = a[0]
            for x in a[1:]:
                out = out + x
        elif op == "*":
            out = a[0]
            for x in a[1:]:
                out = out * x
        elif op == "-":
            out = -a[0] if len(a) == 1 else a[0] - a[1]
        elif op == "/":
            out = a[0] / sa.func.nullif(a[1], 0.0, type_=sa.Float)
        elif len(a) == 1:
            out = a[0]
        elif self.dialect == "sqlite":  # SQLite's scalar min/max: NULL when any argument is
            out = getattr(sa.func, op)(*a, type_=sa.Float)
        else:  # LEAST/GREATEST skip NULLs: a missing operand makes the result missing here
            pick = sa.func.least if op == "min" else sa.func.greatest
            out = sa.case((sa.or_(*(x.is_(None) for x in a)), None), else_=pick(*a, type_=sa.Float))
            # Each operand is written twice: nested min/max double the SQL at every level.
            if _expanded_size(out) > _MAX_SQL_NODES:
                raise _op_error(
                    op,
                    f"nested min/max would write more than {_MAX_SQL_NODES:,} SQL terms; "
                    "flatten them (min and max take many arguments)",
                    here,
                )
        return sa.type_coerce(out, sa.Float)


_MAX_SQL_NODES = 20_000
"""Most terms a compiled rule's SQL may have once written out."""


def _expanded_size(element: Any) -> int:
    """How many terms ``element`` has once written out as SQL (shared sub-expressions counted
    each time they appear), computed over the shared tree in linear time."""
    memo: dict[int, int] = {}

    def size(e: Any) -> int:
        key = id(e)
        if key not in memo:
            memo[key] = 1 + sum(size(c) for c in e.get_children())
        return memo[key]

    return size(element)


def _is_boolean(v: _Sql) -> bool:
    return v.kind == "bool" or (v.kind == "const" and isinstance(v.expr, bool))


def compile_rule_sql(
    rule: Any,
    features: Mapping[str, SqlFeature],
    *,
    dialect: str,
    segments: Mapping[str, Segment] | None = None,
) -> ColumnElement[bool]:
    """One checked segment rule as a two-valued SQL condition.

    Args:
        rule: A rule that passed ``check_rule(rule, mode="segment")``.
        features: The warehouse's features (:func:`feature_columns`).
        dialect: ``postgresql`` or ``sqlite``.
        segments: The segments ``{"segment": name}`` may reference (inlined).

    Returns:
        A boolean SQL expression, never NULL.

    Raises:
        SqlCompileError: An operator or feature that cannot run in SQL (named in the message).
        SegmentReferenceError: A reference to an unknown segment, or a cycle.
    """
    return _Compiler(features, dialect, segments, ()).truth(rule, "$")


def compile_segment_sql(
    segment: Segment,
    features: Mapping[str, SqlFeature],
    *,
    dialect: str,
    segments: Mapping[str, Segment] | None = None,
) -> ColumnElement[bool]:
    """A segment's eligibility (every rule holds) as a two-valued SQL ``WHERE`` condition.

    Raises:
        SqlCompileError: Located at the segment and rule that cannot compile.
        SegmentReferenceError: A reference to an unknown segment, or a cycle.
    """
    parts = []
    for r in segment.rules:
        try:
            comp = _Compiler(features, dialect, segments, (segment.name,))
            parts.append(comp.truth(r.rule, "$"))
        except RuleError as e:
            raise e.located(segment=segment.name, rule=r.name) from e
    return sa.and_(*parts)
