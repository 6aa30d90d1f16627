"""The :class:`SegmentEngine`: segments evaluated over a Feast online store (Redis)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segmentation.errors import SegmentationError, UnknownSegmentError
from segmentation.evaluator import evaluate_segment_rule
from segmentation.loader import load_segments
from segmentation.memberships import HistoryEntry, MembershipStore, RefreshResult
from segmentation.reader import USE_TTL, MaxAge, OnlineReader
from segmentation.segment import evaluate_frame

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore

    from segmentation.segment import Segment
    from xiva_source.settings import Settings

__all__ = ["SegmentEngine"]


class SegmentEngine:
    """Evaluates segments on the online features of a Feast repository.

    Args:
        store: The Feast ``FeatureStore`` (online store: Redis).
        segments: The segments; default: :func:`~segmentation.loader.load_segments` of
            ``segments_dir``.
        segments_dir: Where to load segments from when ``segments`` is not given (default
            ``SEGMENTS_DIR`` or the shipped examples).
        max_age: Staleness (see :class:`~segmentation.reader.OnlineReader`): by default a value
            older than its feature view's ``ttl`` is treated as missing.
        client: A Redis client; default built from the online store config.
        batch_size: Keys per pipelined HMGET.
        chunk: Customers per DataFrame when evaluating the whole population.
        history_limit: Refresh history entries kept per segment.
        settings: The settings the caller loaded (``REDIS_URL``, ``SEGMENTS_DIR``); default: loaded
            for the store's repository.

    Raises:
        UnknownFeatureError: A segment reads a feature the repository does not serve.
        OnlineStoreError: The online store is not a usable Redis.

    Example:
        >>> engine = SegmentEngine(FeatureStore(repo_path="feature_repo"))  # doctest: +SKIP
        >>> engine.segments_of("C00042")  # doctest: +SKIP
        ['active_frequent_buyers', 'gold_vip']
    """

    def __init__(
        self,
        store: FeatureStore,
        segments: Iterable[Segment] | None = None,
        *,
        segments_dir: str | os.PathLike[str] | None = None,
        max_age: MaxAge = USE_TTL,
        client: redis.Redis | None = None,
        batch_size: int = 10_000,
        chunk: int = 100_000,
        history_limit: int = 1000,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:  # a Python API entry point: load once, for the store's repository
            from xiva_source.settings import load_settings

            settings = load_settings(repo_path=store.repo_path)
        self.reader = OnlineReader(
            store, client=client, batch_size=batch_size, max_age=max_age, settings=settings
        )
        self.project = self.reader.project
        self.chunk = chunk
        if segments is None:
            loaded = load_segments(
                segments_dir, feature_names=self.feature_names, settings=settings
            )
        else:
            loaded = list(segments)
            for seg in loaded:
                seg.validate(self.feature_names)
        self.segments: dict[str, Segment] = {}
        for seg in loaded:
            if seg.name in self.segments:
                raise SegmentationError(f"segment {seg.name!r} is given twice")
            self.segments[seg.name] = seg
        self.features: list[str] = sorted({f for s in self.segments.values() for f in s.features})
        self.memberships = MembershipStore(
            self.reader.client, self.project, history_limit=history_limit
        )

    @property
    def feature_names(self) -> set[str]:
        """The feature names the repository serves online (what rules may read)."""
        return set(self.reader.features)

    def segment(self, name: str) -> Segment:
        """The loaded segment called ``name``.

        Raises:
            UnknownSegmentError: No such segment (the message lists the known ones).
        """
        try:
            return self.segments[name]
        except KeyError as e:
            raise UnknownSegmentError(name, list(self.segments)) from e

    # --- one customer ---------------------------------------------------------------------
    def features_of(self, customer_id: str, *, now: _dt.datetime | None = None) -> dict[str, Any]:
        """One customer's (fresh) values of every feature the segments read."""
        return self.reader.read_one(customer_id, self.features, now=now)

    def segments_of(self, customer_id: str, *, now: _dt.datetime | None = None) -> list[str]:
        """The segments one customer belongs to now (one HMGET, per-row evaluation).

        Args:
            customer_id: The customer.
            now: Reference time for staleness (default: now).

        Returns:
            Segment names, in load order.
        """
        row = self.reader.read_one(customer_id, self.features, now=now)
        return [
            name
            for name, seg in self.segments.items()
            if all(evaluate_segment_rule(r.rule, row) for r in seg.rules)
        ]

    # --- many customers -------------------------------------------------------------------
    def frames(
        self, customer_ids: Sequence[str] | None = None, *, now: _dt.datetime | None = None
    ) -> Iterable[pd.DataFrame]:
        """Feature DataFrames of the given customers, or of the whole population (SCAN)."""
        if customer_ids is None:
            yield from self.reader.iter_population(self.features, chunk=self.chunk, now=now)
            return
        ids = [str(c) for c in customer_ids]
        for i in range(0, len(ids), self.chunk):
            yield self.reader.read(ids[i : i + self.chunk], self.features, now=now)

    def evaluate(
        self,
        customer_ids: Sequence[str] | None = None,
        segments: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Membership of many customers in many segments (vectorized).

        Args:
            customer_ids: The customers; default: every customer of the project (SCAN).
            segments: Segment names; default: all.
            now: Reference time for staleness.

        Returns:
            A boolean DataFrame indexed by customer id, one column per segment, sorted by id.
        """
        chosen = [self.segment(n) for n in (segments or list(self.segments))]
        parts = []
        for frame in self.frames(customer_ids, now=now):
            parts.append(evaluate_frame(chosen, frame))
        if not parts:
            empty = pd.Index([], name=self.reader.join_key, dtype=object)
            return pd.DataFrame({s.name: pd.Series([], dtype=bool) for s in chosen}, index=empty)
        return pd.concat(parts).sort_index()

    def members(
        self,
        segment: str,
        customer_ids: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
    ) -> list[str]:
        """The members of a segment now, among ``customer_ids`` or among all customers (sorted)."""
        result = self.evaluate(customer_ids, [segment], now=now)[segment]
        return [str(c) for c in result.index[result.to_numpy(dtype=bool)]]

    def sizes(
        self, customer_ids: Sequence[str] | None = None, *, now: _dt.datetime | None = None
    ) -> dict[str, int]:
        """Every segment's size now (among ``customer_ids`` or the whole population)."""
        table = self.evaluate(customer_ids, now=now)
        return {name: int(np.count_nonzero(table[name].to_numpy())) for name in self.segments}

    # --- stored memberships ---------------------------------------------------------------
    def refresh(
        self, segments: Sequence[str] | None = None, *, now: _dt.datetime | None = None
    ) -> dict[str, RefreshResult]:
        """Recompute segments over the whole population and store the memberships in Redis.

        All the segments switch to their new sets at once (one generation switch, see
        :mod:`segmentation.memberships`): a refresh killed mid-way leaves the old sets of every
        segment. Who joined and who left since the last refresh and a history entry are recorded.
        A dead refresh's lock is taken over (with a warning); a live one is waited for.

        Returns:
            Per segment: size, joined and left ids, timestamp.
        """
        names = list(segments or self.segments)
        table = self.evaluate(None, names, now=now)
        fresh = {
            name: [str(c) for c in table.index[table[name].to_numpy(dtype=bool)]] for name in names
        }
        return self.memberships.store_many(fresh, now=now)

    def is_member(self, segment: str, customer_id: str) -> bool:
        """O(1) membership as of the last :meth:`refresh` (SISMEMBER)."""
        self.segment(segment)
        return self.memberships.is_member(segment, customer_id)

    def stored_members(self, segment: str) -> list[str]:
        """The members as of the last refresh."""
        self.segment(segment)
        return self.memberships.members(segment)

    def joined(self, segment: str) -> list[str]:
        """Customers who joined ``segment`` at the last refresh."""
        self.segment(segment)
        return self.memberships.joined(segment)

    def left(self, segment: str) -> list[str]:
        """Customers who left ``segment`` at the last refresh."""
        self.segment(segment)
        return self.memberships.left(segment)

    def history(self, segment: str, limit: int | None = None) -> list[HistoryEntry]:
        """The segment's refresh history (timestamp, size, joined, left), newest first."""
        self.segment(segment)
        return self.memberships.history(segment, limit)

    def export(
        self,
        segment: str,
        path: str | os.PathLike[str],
        *,
        stored: bool = False,
        with_features: bool = False,
        now: _dt.datetime | None = None,
    ) -> int:
        """Write a segment's members to a CSV or parquet file (by suffix) for a campaign.

        Args:
            segment: The segment.
            path: ``*.csv`` or ``*.parquet``.
            stored: Export the members of the last refresh instead of evaluating now.
            with_features: Add the segment's feature values as columns.
            now: Reference time for staleness.

        Returns:
            The number of members written.

        Raises:
            SegmentationError: The suffix is neither ``.csv`` nor ``.parquet``.
        """
        target = Path(path)
        if target.suffix not in (".csv", ".parquet"):
            raise SegmentationError(
                f"cannot export to {target.name!r}: unknown format. Fix: name the file "
                "*.csv or *.parquet"
            )
        ids = self.stored_members(segment) if stored else self.members(segment, now=now)
        frame = pd.DataFrame({self.reader.join_key: pd.Series(ids, dtype=object)})
        if with_features and ids:
            feats = sorted(self.segment(segment).features)
            values = self.reader.read(ids, feats, now=now).reset_index(drop=True)
            frame = pd.concat([frame, values], axis=1)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".csv":
            frame.to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
        return len(ids)
