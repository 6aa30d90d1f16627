"""JSONLogic customer segments over Feast online features.

Safe per-row evaluation (``json-logic-qubit`` behind an operator allow-list), validation against the
Feast repository's feature names, vectorized evaluation over pandas, a fast reader of Feast's Redis
online store, memberships in Redis and a CLI (``python -m segmentation``). See docs/segmentation.md.
"""

from __future__ import annotations

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
from segmentation.loader import DEFAULT_SEGMENTS_DIR, check_segments_dir, load_segments
from segmentation.memberships import HistoryEntry, MembershipStore, RefreshResult
from segmentation.overlap import Overlap, SizeTable, population_sizes
from segmentation.preview import Preview, RuleCount
from segmentation.reader import USE_TTL, OnlineReader
from segmentation.realtime import CustomerUpdate, update_customer, update_customers
from segmentation.report import GroupBalance, ReportData, build_report, render_report, write_report
from segmentation.rules import CLASSIC_OPERATORS, SEGMENT_OPERATORS, RuleLimits, check_rule
from segmentation.segment import NamedRule, Segment, evaluate_frame
from segmentation.served import SEGMENTS_VIEW, ServedMemberships
from segmentation.vectorized import CompiledRule, compile_rule

__all__ = [
    "CLASSIC_OPERATORS",
    "DEFAULT_SEGMENTS_DIR",
    "EVENTS_MAXLEN",
    "FEATURE_NAME_HINT",
    "SEGMENTS_VIEW",
    "SEGMENT_OPERATORS",
    "USE_TTL",
    "CompiledRule",
    "CustomerUpdate",
    "EvaluationLimitError",
    "GroupBalance",
    "GroupSpec",
    "HistoryEntry",
    "MembershipEvent",
    "MembershipStore",
    "NamedRule",
    "OnlineReader",
    "OnlineStoreError",
    "Overlap",
    "Preview",
    "RefreshResult",
    "ReportData",
    "RuleCount",
    "RuleError",
    "RuleLimits",
    "Segment",
    "SegmentCycleError",
    "SegmentEngine",
    "SegmentFileError",
    "SegmentReferenceError",
    "SegmentationError",
    "ServedMemberships",
    "SizeTable",
    "UnknownFeatureError",
    "UnknownSegmentError",
    "UnknownSegmentReferenceError",
    "build_report",
    "check_references",
    "check_rule",
    "check_segments_dir",
    "compile_rule",
    "evaluate",
    "evaluate_frame",
    "evaluation_order",
    "group_of",
    "groups_of",
    "load_segments",
    "normalize_data",
    "normalize_value",
    "population_sizes",
    "read_events",
    "render_report",
    "unit_hash",
    "unit_hashes",
    "update_customer",
    "update_customers",
    "write_report",
]
