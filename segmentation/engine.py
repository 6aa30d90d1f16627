"""The :class:`SegmentEngine`: segments evaluated over a Feast online store (Redis)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segmentation.dependencies import evaluation_order, required
from segmentation.errors import SegmentationError, UnknownSegmentError
from segmentation.evaluator import evaluate_segment_rule
from segmentation.export import GROUP_COLUMN, export_target, insert_groups, write_frames
from segmentation.groups import TARGET
from segmentation.loader import load_segments
from segmentation.memberships import HistoryEntry, MembershipStore, RefreshResult
from segmentation.reader import USE_TTL, MaxAge, OnlineReader
from segmentation.rules import reference_key
from segmentation.segment import evaluate_frame

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore
    from redis.cluster import RedisCluster

    from segmentation.segment import Segment
    from xiva_source.feast_plugin.registry_reader import LightRepository
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
        client: A Redis client (``redis.Redis``, or ``RedisCluster``: every primary is read in
            parallel); default built from the online store config.
        batch_size: Keys per pipelined HMGET.
        chunk: Customers per DataFrame when evaluating the whole population: the memory bound
            of sizes, members, refresh and export (one chunk at a time).
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
        store: FeatureStore | LightRepository,
        segments: Iterable[Segment] | None = None,
        *,
        segments_dir: str | os.PathLike[str] | None = None,
        max_age: MaxAge = USE_TTL,
        client: redis.Redis | RedisCluster | None = None,
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
        # {"segment": ...} references: refused here when unknown or in a cycle (names given).
        self.order: list[str] = [s.name for s in evaluation_order(self.segments.values())]
        self.global_control = float(settings.segments_global_control)
        """``SEGMENTS_GLOBAL_CONTROL``: the share of all customers in no segment's target."""
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
            Segment names (eligible: whatever the group), in load order.
        """
        row = dict(self.reader.read_one(customer_id, self.features, now=now))
        eligible: dict[str, bool] = {}
        for name in self.order:  # a referenced segment first: its eligibility joins the row
            seg = self.segments[name]
            eligible[name] = all(evaluate_segment_rule(r.rule, row) for r in seg.rules)
            row[reference_key(name)] = eligible[name]
        return [name for name in self.segments if eligible[name]]

    # --- many customers -------------------------------------------------------------------
    def frames(
        self,
        customer_ids: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
        times: bool = False,
    ) -> Iterable[pd.DataFrame]:
        """Feature DataFrames of the given customers, or of the whole population (SCAN).

        ``times``: with the stored dates and event timestamps (see
        :meth:`OnlineReader.iter_population`).
        """
        if customer_ids is None:
            yield from self.reader.iter_population(
                self.features, chunk=self.chunk, now=now, times=times
            )
            return
        ids = [str(c) for c in customer_ids]
        for i in range(0, len(ids), self.chunk):
            yield self.reader.read(ids[i : i + self.chunk], self.features, now=now, times=times)

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
        parts = list(self.chunk_masks(customer_ids, segments, now=now))
        if not parts:
            empty = pd.Index([], name=self.reader.join_key, dtype=object)
            return pd.DataFrame({s.name: pd.Series([], dtype=bool) for s in chosen}, index=empty)
        return pd.concat(parts).sort_index()

    def chunk_masks(
        self,
        customer_ids: Sequence[str] | None = None,
        segments: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Membership chunk by chunk: what :meth:`evaluate` returns, one chunk at a time.

        Memory is one chunk of features (``chunk`` customers) and its masks, whatever the
        population: :meth:`members`, :meth:`sizes`, :meth:`refresh` and :meth:`export` are built
        on it. Chunks come in the reader's order (not sorted; no customer twice).

        Yields:
            A boolean DataFrame per chunk, indexed by customer id, one column per segment.
        """
        names = list(segments or self.segments)
        needed = required(names, self.segments)  # with the segments they reference
        for frame in self.frames(customer_ids, now=now):
            masks = evaluate_frame(needed, frame)
            yield masks if len(needed) == len(names) else masks[names]

    def members(
        self,
        segment: str,
        customer_ids: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
    ) -> list[str]:
        """The members of a segment now, among ``customer_ids`` or among all customers (sorted).

        Streamed: only the members' ids are kept, never the population's features.
        """
        return self._member_ids([segment], customer_ids, now)[segment]

    def _member_ids(
        self,
        segments: Sequence[str],
        customer_ids: Sequence[str] | None,
        now: _dt.datetime | None,
    ) -> dict[str, list[str]]:
        """Each segment's members (sorted ids), evaluated chunk by chunk (only ids kept)."""
        found: dict[str, list[str]] = {name: [] for name in segments}
        for masks in self.chunk_masks(customer_ids, segments, now=now):
            for name, ids in found.items():
                ids.extend(masks.index[masks[name].to_numpy(dtype=bool)].tolist())
        for ids in found.values():
            ids.sort()
        return found

    def members_with_groups(
        self,
        segment: str,
        customer_ids: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
    ) -> pd.DataFrame:
        """The members now (as :meth:`members`) with their group in the segment.

        Returns:
            A DataFrame with columns ``customer_id`` (the join key) and ``group`` (``holdout``,
            ``global_control``, an arm's name or ``target``), sorted by id.
        """
        ids = self.members(segment, customer_ids, now=now)
        groups = self.segment(segment).groups(ids, global_control=self.global_control)
        return pd.DataFrame(
            {
                self.reader.join_key: pd.Series(ids, dtype=object),
                "group": pd.Series(groups, dtype=object),
            }
        )

    def group_of(self, segment: str, customer_id: str) -> str | None:
        """The customer's group in ``segment`` as of the last :meth:`refresh` (``None``: not a
        member); ``holdout`` and ``global_control`` members are not targeted."""
        self.segment(segment)
        return self.memberships.group_of(segment, customer_id)

    def sizes(
        self, customer_ids: Sequence[str] | None = None, *, now: _dt.datetime | None = None
    ) -> dict[str, int]:
        """Every segment's size now (among ``customer_ids`` or the whole population).

        Streamed: counts are added up chunk by chunk.
        """
        counts = dict.fromkeys(self.segments, 0)
        for masks in self.chunk_masks(customer_ids, now=now):
            for name in counts:
                counts[name] += int(np.count_nonzero(masks[name].to_numpy(dtype=bool)))
        return counts

    # --- stored memberships ---------------------------------------------------------------
    def refresh(
        self,
        segments: Sequence[str] | None = None,
        *,
        now: _dt.datetime | None = None,
        full: bool = False,
    ) -> dict[str, RefreshResult]:
        """Bring the stored memberships up to date: incrementally by default.

        Incremental (:mod:`segmentation.incremental`): only the customers written since the
        segment's last refresh (the changed-customers journal, :mod:`segmentation.journal`) and
        those whose membership time may have flipped (:mod:`segmentation.time_flips`) are
        re-evaluated; the stored sets are updated in place, with the same ``joined``/``left``
        events and history entry a full refresh would record, in one transaction.

        Full (``full=True``, and for a segment refreshed for the first time, whose definition
        changed, or whose rules time cannot be analysed for; the result says why): the whole
        population is evaluated and every segment switches to its new sets at once (one
        generation switch, :mod:`segmentation.memberships`).

        Either way a refresh killed mid-way leaves every segment as it was, and a dead refresh's
        lock is taken over (with a warning); a live one is waited for.

        Args:
            segments: The segments (default: all).
            now: The moment evaluated as of (default: the derivation clock's now).
            full: Evaluate the whole population (``segmentation refresh --full``).

        Returns:
            Per segment: size, joined and left ids, timestamp, mode (and why it was full).
        """
        from segmentation.incremental import refresh_segments

        return refresh_segments(self, list(segments or self.segments), now=now, full=full)

    def _serve(
        self,
        results: dict[str, RefreshResult],
        fresh: dict[str, list[str]],
        now: _dt.datetime | None,
    ) -> None:
        """Rewrite the served memberships (``customer_segments``) of every member and leaver."""
        from segmentation.served import ServedMemberships

        served = ServedMemberships.of(self)
        if served is not None:
            ids = [c for ids in fresh.values() for c in ids]
            ids += [c for res in results.values() for c in res.left]
            served.sync(self.memberships, self.segments, ids, now=now)

    def _untargeted_groups(self, segment: str, ids: Sequence[str]) -> dict[str, str]:
        """``member -> group`` of the members whose group is not ``target`` (what is stored)."""
        groups = self.segment(segment).groups(ids, global_control=self.global_control)
        return {cid: g for cid, g in zip(ids, groups, strict=True) if g != TARGET}

    def is_member(self, segment: str, customer_id: str) -> bool:
        """O(1): whether the customer is a *targeted* member as of the last :meth:`refresh`
        (eligible, and in neither the segment's holdout nor the global control group)."""
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

        Columns: the join key (``customer_id``), ``group`` (``holdout``, ``global_control``, an
        arm's name or ``target``: see :mod:`segmentation.groups`), then the features if asked.

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
        target = export_target(path)
        ids = self.stored_members(segment) if stored else self.members(segment, now=now)
        feats = sorted(self.segment(segment).features) if with_features else []
        frames = self._export_frames(ids, feats, now, self._grouper(segment, stored))
        write_frames(target, frames, self._arrow_schema(feats))
        return len(ids)

    def _grouper(self, segment: str, stored: bool) -> Callable[[list[str]], list[str]]:
        """The members' groups: as stored by the last refresh, or computed now (same hash)."""
        if stored:

            def stored_groups(ids: list[str]) -> list[str]:
                found = self.memberships.groups_of(segment, ids)
                return [found.get(c, TARGET) for c in ids]

            return stored_groups
        seg = self.segment(segment)
        return lambda ids: list(seg.groups(ids, global_control=self.global_control))

    def _export_frames(
        self,
        ids: list[str],
        features: list[str],
        now: _dt.datetime | None,
        grouper: Callable[[list[str]], list[str]] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The export's rows, ``chunk`` members at a time (features read per chunk)."""
        key = self.reader.join_key
        for i in range(0, max(len(ids), 1), self.chunk):
            part = ids[i : i + self.chunk]
            frame = pd.DataFrame({key: pd.Series(part, dtype=object)})
            if grouper is not None:
                insert_groups(frame, grouper(part) if part else [])
            if features and part:
                values = self.reader.read(part, features, now=now).reset_index(drop=True)
                frame = pd.concat([frame, values], axis=1)
            elif features:
                frame = pd.concat([frame, pd.DataFrame(columns=features)], axis=1)
            yield frame

    def _arrow_schema(self, features: list[str]) -> Any:
        """The parquet export's schema: fixed, so that every chunk is written with it."""
        import pyarrow as pa

        types = {"DOUBLE": pa.float64(), "FLOAT": pa.float64(), "INT64": pa.int64()}
        types.update({"INT32": pa.int64(), "BOOL": pa.bool_(), "STRING": pa.string()})
        fields = [pa.field(self.reader.join_key, pa.string()), pa.field(GROUP_COLUMN, pa.string())]
        for name in features:
            value_type = self.reader.feature(name).value_type
            fields.append(pa.field(name, types.get(value_type, pa.string())))
        return pa.schema(fields)
