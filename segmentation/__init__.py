"""JSONLogic customer segments over Feast online features.

Safe per-row evaluation (``json-logic-qubit`` behind an operator allow-list), validation against the
Feast repository's feature names, vectorized evaluation over pandas, a fast reader of Feast's Redis
online store, memberships in Redis and a CLI (``python -m segmentation``). See docs/segmentation.md.

Names load on first use (:mod:`xiva_source.lazy`), so ``import segmentation.errors`` imports no
pandas, Feast or Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from segmentation.dependencies import check_references, evaluation_order
    from segmentation.engine import SegmentEngine
    from segmentation.errors import (
        FEATURE_NAME_HINT,
        EvaluationLimitError,
        OnlineStoreError,
        RuleError,
        SegmentationError,
        SegmentCycleError,
        SegmentFileError,
        SegmentReferenceError,
        UnknownFeatureError,
        UnknownSegmentError,
        UnknownSegmentReferenceError,
    )
    from segmentation.evaluator import evaluate, normalize_data, normalize_value
    from segmentation.events import EVENTS_MAXLEN, MembershipEvent, read_events
    from segmentation.groups import GroupSpec, group_of, groups_of, unit_hash, unit_hashes
    from segmentation.journal import Journal, SegmentState, mark_changed
    from segmentation.loader import DEFAULT_SEGMENTS_DIR, check_segments_dir, load_segments
    from segmentation.memberships import HistoryEntry, MembershipStore, RefreshResult
    from segmentation.overlap import Overlap, SizeTable, population_sizes
    from segmentation.preview import Preview, RuleCount
    from segmentation.reader import USE_TTL, OnlineReader
    from segmentation.realtime import CustomerUpdate, update_customer, update_customers
    from segmentation.report import (
        GroupBalance,
        ReportData,
        build_report,
        render_report,
        write_report,
    )
    from segmentation.rules import CLASSIC_OPERATORS, SEGMENT_OPERATORS, RuleLimits, check_rule
    from segmentation.segment import NamedRule, Segment, evaluate_frame
    from segmentation.served import SEGMENTS_VIEW, ServedMemberships
    from segmentation.vectorized import CompiledRule, compile_rule

__all__ = lazy.attach(__name__, __file__)
