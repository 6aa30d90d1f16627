"""Vectorized evaluation: a segment rule compiled to column operations over a DataFrame.

Each node compiles to a typed column (:class:`_Vec`): ``bool`` (no nulls), ``num`` (float64, NaN =
missing), ``str`` (object, None = missing), ``truthy`` (only its truthiness is known, e.g.
``missing``) or ``obj`` (anything, truthiness only). The semantics are exactly those of
:func:`segmentation.evaluator.evaluate_segment_rule`; a node whose operand types the compiler does
not handle (a string compared with ``<``, ``cat``, ``substr``, ``in`` over a string...) is evaluated
per row for that sub-expression, logged once, and listed in :attr:`CompiledRule.fallbacks`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentation.errors import RuleError
from segmentation.evaluator import evaluate_segment_value, normalize_value, truthy
from segmentation.rules import DEFAULT_LIMITS, RuleLimits, check_rule, reference_key

__all__ = ["CompiledRule", "compile_rule"]

logger = logging.getLogger(__name__)
_warned: set[str] = set()


class _Unvectorizable(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class _Vec:
    kind: str  # "const" | "bool" | "num" | "str" | "truthy" | "obj"
    value: Any  # the constant, or a numpy array
    null: np.ndarray | None = None  # "str" only: where the value is missing


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _column(df: pd.DataFrame, name: str) -> _Vec:
    if name not in df.columns:
        return _Vec("const", None)
    s = df[name]
    if pd.api.types.is_bool_dtype(s.dtype):
        return _Vec("obj", s.astype(object).to_numpy())  # bools mix with ints in JsonLogic
    if pd.api.types.is_numeric_dtype(s.dtype):
        return _Vec("num", s.to_numpy(dtype="float64", na_value=np.nan))
    values = s.to_numpy(dtype=object)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if values.size and inferred in ("string", "empty"):
        null = pd.isna(values)
        out = values.copy()
        out[null] = None
        return _Vec("str", out, null)
    return _Vec("obj", np.array([normalize_value(v) for v in values], dtype=object))


def _from_values(values: list[Any]) -> _Vec:
    """The per-row results of a fallback, typed as precisely as they allow."""
    if all(isinstance(v, bool) for v in values):
        return _Vec("bool", np.array(values, dtype=bool))
    if all(v is None or _is_num(v) for v in values):
        try:
            nums = np.array([np.nan if v is None else v for v in values], dtype="float64")
            return _Vec("num", nums)
        except OverflowError:  # an int beyond float64: kept as objects (the parent runs per row)
            pass
    if all(v is None or isinstance(v, str) for v in values):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return _Vec("str", arr, np.array([v is None for v in values], dtype=bool))
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return _Vec("obj", arr)


@dataclass
class CompiledRule:
    """A segment rule compiled for DataFrames.

    Attributes:
        rule: The source rule.
        fallbacks: ``(path, reason)`` of every sub-expression evaluated per row (empty when the rule
            is fully vectorized); filled on the first :meth:`mask` call.
    """

    rule: Any
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    nodes: int = 1
    """The rule's size (values), for the memory estimate of :meth:`slice_rows`."""
    builds_strings: bool = False
    """Whether the rule uses ``cat`` or ``substr`` (per-row string values, up to
    ``RuleLimits.max_value_length`` characters each)."""
    limits: RuleLimits = DEFAULT_LIMITS

    @property
    def fully_vectorized(self) -> bool:
        """True when the last evaluation used no per-row fallback."""
        return not self.fallbacks

    def mask(self, df: pd.DataFrame, cache: dict[str, Any] | None = None) -> np.ndarray:
        """Evaluate the rule on every row of ``df`` at once.

        Args:
            df: One column per feature.
            cache: A dict shared by the rules evaluated on the same ``df`` (and only that
                ``df``): columns are converted once for all of them.

        Returns:
            A boolean numpy array, one entry per row.
        """
        self.fallbacks = []
        step = self.slice_rows(df)
        if step >= len(df):
            run = _Run(df, self, {} if cache is None else cache)
            return run.truth(run.vec_or_rows(self.rule, "$"))
        out = np.empty(len(df), dtype=bool)
        for start in range(0, len(df), step):  # a big rule: bounded memory, slice by slice
            run = _Run(df.iloc[start : start + step], self, {})
            out[start : start + step] = run.truth(run.vec_or_rows(self.rule, "$"))
        self.fallbacks = list(dict.fromkeys(self.fallbacks))
        return out

    def slice_rows(self, df: pd.DataFrame) -> int:
        """How many rows one pass may evaluate within ``limits.max_batch_bytes``.

        Each node may hold a column (a float64 and a mask: about 16 bytes a row); a rule with
        ``cat``/``substr`` also a per-row dict and a string of up to ``max_value_length``
        characters a row. A usual rule (tens of nodes) runs over a 100,000-row chunk at once.
        """
        per_row = 16 * self.nodes
        if self.builds_strings:
            per_row += 4 * self.limits.max_value_length + 128 * len(df.columns)
        return max(1, self.limits.max_batch_bytes // per_row)


def compile_rule(rule: Any, *, limits: RuleLimits = DEFAULT_LIMITS) -> CompiledRule:
    """Check a segment rule and compile it (see :class:`CompiledRule`).

    Raises:
        RuleError: The rule is refused by :func:`segmentation.rules.check_rule`.
    """
    info = check_rule(rule, mode="segment", limits=limits)
    strings = bool(info.operators & {"cat", "substr"})
    return CompiledRule(rule, nodes=info.nodes, builds_strings=strings, limits=limits)


_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class _Run:
    def __init__(self, df: pd.DataFrame, compiled: CompiledRule, cache: dict[str, Any]) -> None:
        self.df = df
        self.n = len(df)
        self.compiled = compiled
        self.cache = cache

    def column(self, name: str) -> _Vec:
        key = f"column:{name}"
        if key not in self.cache:
            self.cache[key] = _column(self.df, name)
        vec: _Vec = self.cache[key]
        return vec

    # --- fallback -------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] | None = self.cache.get("rows")
        if rows is None:
            cols = {
                c: [normalize_value(v) for v in self.df[c].to_numpy(dtype=object)]
                for c in self.df.columns
            }
            names = list(cols)
            rows = [
                dict(zip(names, vals, strict=True)) for vals in zip(*cols.values(), strict=True)
            ]
            if not names:
                rows = [{} for _ in range(self.n)]
            self.cache["rows"] = rows
        return rows

    def vec_or_rows(self, node: Any, path: str) -> _Vec:
        try:
            return self.vec(node, path)
        except _Unvectorizable as e:
            self.compiled.fallbacks.append((path, e.reason))
            key = f"{path}:{e.reason}:{node!r}"
            if key not in _warned:
                _warned.add(key)
                shown = repr(node)
                shown = shown if len(shown) <= 200 else f"{shown[:200]}... ({len(shown)} chars)"
                logger.warning(
                    "segment rule %s at %s is evaluated per row (%s)", shown, path, e.reason
                )
            return _from_values([evaluate_segment_value(node, r) for r in self.rows()])

    # --- conversions ----------------------------------------------------------------------
    def truth(self, v: _Vec) -> np.ndarray:
        if v.kind == "const":
            return np.full(self.n, truthy(v.value))
        if v.kind in ("bool", "truthy"):
            return np.asarray(v.value, dtype=bool)
        if v.kind == "num":
            arr = v.value
            return ~np.isnan(arr) & (arr != 0)
        return np.array([truthy(x) for x in v.value], dtype=bool)

    def num(self, v: _Vec) -> np.ndarray:
        if v.kind == "num":
            return np.asarray(v.value, dtype="float64")
        if v.kind == "const" and (v.value is None or _is_num(v.value)):
            try:
                return np.full(self.n, np.nan if v.value is None else float(v.value))
            except OverflowError:  # an integer beyond float64: Python ints, row by row
                raise _Unvectorizable("an integer too large for float64") from None
        raise _Unvectorizable(f"operand of kind {v.kind} in a numeric operation")

    def string(self, v: _Vec) -> tuple[Any, np.ndarray]:
        """A string operand: (object array or str scalar, missing mask)."""
        if v.kind == "str":
            null = v.null if v.null is not None else pd.isna(v.value)
            return v.value, null
        if v.kind == "const" and (v.value is None or isinstance(v.value, str)):
            return v.value, np.full(self.n, v.value is None)
        raise _Unvectorizable(f"operand of kind {v.kind} in a string operation")

    # --- compilation ----------------------------------------------------------------------
    def vec(self, node: Any, path: str) -> _Vec:
        if not isinstance(node, dict):
            return _Vec("const", node)
        op, raw = next(iter(node.items()))
        args = list(raw) if isinstance(raw, list | tuple) else [raw]
        here = f"{path}.{op}"
        if not _uses_data(node):
            return _Vec("const", evaluate_segment_value(node, {}))
        if op == "var":
            col = self.column(args[0])
            if len(args) > 1 and args[1] is not None:
                default = args[1]
                if col.kind == "num" and _is_num(default):
                    return _Vec("num", np.where(np.isnan(col.value), float(default), col.value))
                if col.kind == "str" and isinstance(default, str):
                    out = col.value.copy()
                    out[pd.isna(out)] = default
                    return _Vec("str", out, np.zeros(self.n, dtype=bool))
                if col.kind == "const":
                    return _Vec("const", default)
                raise _Unvectorizable("var default of another type than the column")
            return col
        if op == "segment":  # eligibility in another segment: a boolean column evaluate_frame adds
            key = reference_key(args[0])
            if key not in self.df.columns:
                raise RuleError(
                    f"the rule references segment {args[0]!r}, which was not evaluated first",
                    "evaluate the segments in dependency order (SegmentEngine or "
                    "segmentation.evaluate_frame)",
                )
            return _Vec("bool", self.df[key].to_numpy(dtype=bool))
        if op in ("missing", "missing_some"):
            names = args[1] if op == "missing_some" else args
            if op == "missing" and len(args) == 1 and isinstance(args[0], list):
                names = args[0]
            missing = np.zeros(self.n, dtype="int64")
            for name in names:
                if name not in self.df.columns:
                    missing += 1
                    continue
                s = self.df[name]
                missing += (s.isna() | s.astype(object).eq("")).to_numpy(dtype=bool)
            if op == "missing":
                return _Vec("truthy", missing > 0)
            present = len(names) - missing
            return _Vec("truthy", (present < args[0]) & (missing > 0))
        subs = [self.vec_or_rows(a, f"{here}[{i}]") for i, a in enumerate(args)]
        if op in ("!", "!!"):
            t = self.truth(subs[0])
            return _Vec("bool", ~t if op == "!" else t)
        if op in ("and", "or"):
            if all(_is_boolean(s) for s in subs):
                logic: Any = np.logical_and if op == "and" else np.logical_or
                return _Vec("bool", logic.reduce([self.truth(s) for s in subs]))
            raise _Unvectorizable(f"'{op}' over non-boolean values returns values")
        if op in ("if", "?:"):
            return self._if(subs)
        if op in ("==", "===", "!=", "!=="):
            return self._equality(op, subs)
        if op in _CMP:
            a = [self.num(s) for s in subs]
            ok = np.ones(self.n, dtype=bool)
            for x in a:
                ok &= ~np.isnan(x)
            fn = _CMP[op]
            with np.errstate(invalid="ignore"):
                out = fn(a[0], a[1])
                if len(a) == 3:
                    out &= fn(a[1], a[2])
            return _Vec("bool", out & ok)
        if op == "in":
            return self._in(args, subs)
        if op in ("+", "-", "*", "/", "%", "min", "max"):
            return self._arith(op, [self.num(s) for s in subs])
        raise _Unvectorizable(f"operator '{op}' has no column implementation")

    def _if(self, subs: list[_Vec]) -> _Vec:
        if len(subs) % 2 == 0:
            raise _Unvectorizable("'if' without an else branch")
        branches = [subs[i] for i in range(1, len(subs), 2)] + [subs[-1]]
        conds = [self.truth(subs[i]) for i in range(0, len(subs) - 1, 2)]
        if all(
            b.kind == "bool" or (b.kind == "const" and isinstance(b.value, bool)) for b in branches
        ):
            vals = [self.truth(b) for b in branches]
            return _Vec("bool", np.select(conds, vals[:-1], vals[-1]))
        vals_n = [self.num(b) for b in branches]  # raises when not numeric
        return _Vec("num", np.select(conds, vals_n[:-1], vals_n[-1]))

    def _equality(self, op: str, subs: list[_Vec]) -> _Vec:
        a, b = subs
        negate = op in ("!=", "!==")
        kinds = {a.kind, b.kind}
        try:
            x, y = self.num(a), self.num(b)
            ok = ~np.isnan(x) & ~np.isnan(y)
        except _Unvectorizable:
            if not kinds <= {"str", "const"}:
                raise
            (x, x_null), (y, y_null) = self.string(a), self.string(b)
            ok = ~(x_null | y_null)
        with np.errstate(invalid="ignore"):
            eq = np.asarray(x == y, dtype=bool)
        return _Vec("bool", (~eq if negate else eq) & ok)

    def _in(self, args: list[Any], subs: list[_Vec]) -> _Vec:
        needle, hay = subs
        if hay.kind != "const" or not isinstance(hay.value, list):
            raise _Unvectorizable("'in' over a non-literal container (substring test)")
        items = hay.value
        if needle.kind == "str" and all(isinstance(i, str) for i in items):
            values, null = self.string(needle)
            return _Vec("bool", pd.Series(values, dtype=object).isin(items).to_numpy() & ~null)
        if needle.kind == "num" and all(_is_num(i) for i in items):
            values = needle.value
            return _Vec(
                "bool", np.isin(values, np.array(items, dtype="float64")) & ~np.isnan(values)
            )
        raise _Unvectorizable("'in' with mixed types")

    def _arith(self, op: str, a: list[np.ndarray]) -> _Vec:
        with np.errstate(all="ignore"):
            if op == "+":
                out = reduce_left(np.add, a)
            elif op == "*":
                out = reduce_left(np.multiply, a)
            elif op == "-":
                out = -a[0] if len(a) == 1 else a[0] - a[1]
            elif op == "/":
                out = np.where(a[1] == 0, np.nan, a[0] / a[1])
            elif op == "%":
                out = np.where(a[1] == 0, np.nan, np.mod(a[0], a[1]))
            else:
                nan = np.zeros(self.n, dtype=bool)
                for x in a:
                    nan |= np.isnan(x)
                fn = np.minimum if op == "min" else np.maximum
                out = np.where(nan, np.nan, reduce_left(fn, a))
        out = np.where(np.isfinite(out), out, np.nan)
        return _Vec("num", out)


def reduce_left(fn: Callable[[Any, Any], Any], arrays: list[np.ndarray]) -> np.ndarray:
    out = arrays[0]
    for x in arrays[1:]:
        out = fn(out, x)
    return out


def _is_boolean(v: _Vec) -> bool:
    return v.kind == "bool" or (v.kind == "const" and isinstance(v.value, bool))


def _uses_data(node: Any) -> bool:
    if isinstance(node, dict):
        op, args = next(iter(node.items()))
        return op in ("var", "missing", "missing_some", "segment") or _uses_data(args)
    if isinstance(node, list | tuple):
        return any(_uses_data(x) for x in node)
    return False
