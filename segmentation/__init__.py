"""JSONLogic customer segments over Feast online features.

Safe per-row evaluation (``json-logic-qubit`` behind an operator allow-list), validation against the
Feast repository's feature names, vectorized evaluation over pandas, a fast reader of Feast's Redis
online store, memberships in Redis and a CLI (``python -m segmentation``). See docs/segmentation.md.
"""

from __future__ import annotations

from segmentation.engine import SegmentEngine
from segmentation.errors import (
    FEATURE_NAME_HINT,
    EvaluationLimitError,
    OnlineStoreError,
    RuleError,
    SegmentationError,
    SegmentFileError,
    UnknownFeatureError,
    UnknownSegmentError,
)
from segmentation.evaluator import evaluate, normalize_data, normalize_value
from segmentation.loader import DEFAULT_SEGMENTS_DIR, check_segments_dir, load_segments
from segmentation.memberships import HistoryEntry, MembershipStore, RefreshResult
from segmentation.reader import USE_TTL, OnlineReader
from segmentation.rules import CLASSIC_OPERATORS, SEGMENT_OPERATORS, RuleLimits, check_rule
from segmentation.segment import NamedRule, Segment, evaluate_frame
from segmentation.vectorized import CompiledRule, compile_rule

__all__ = [
    "CLASSIC_OPERATORS",
    "DEFAULT_SEGMENTS_DIR",
    "FEATURE_NAME_HINT",
    "SEGMENT_OPERATORS",
    "USE_TTL",
    "CompiledRule",
    "EvaluationLimitError",
    "HistoryEntry",
    "MembershipStore",
    "NamedRule",
    "OnlineReader",
    "OnlineStoreError",
    "RefreshResult",
    "RuleError",
    "RuleLimits",
    "Segment",
    "SegmentEngine",
    "SegmentFileError",
    "SegmentationError",
    "UnknownFeatureError",
    "UnknownSegmentError",
    "check_rule",
    "check_segments_dir",
    "compile_rule",
    "evaluate",
    "evaluate_frame",
    "load_segments",
    "normalize_data",
    "normalize_value",
]
