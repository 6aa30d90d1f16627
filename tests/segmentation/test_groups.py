"""The pinned group hashing (segmentation/groups.py): the formula by hand, statistics, SQL."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest

from segmentation.groups import (
    GLOBAL_CONTROL,
    HOLDOUT,
    TARGET,
    GroupSpec,
    group_of,
    groups_of,
    in_global_control,
    unit_hash,
    unit_hashes,
)

IDS = [f"C{i:05d}" for i in range(10_000)]


def _by_hand(salt: str, customer_id: str) -> float:
    """pins.md #1, written out independently of the module."""
    hexdigest = hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()
    return int(hexdigest[:13], 16) / 16**13


def _within(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(observed / n - p) < sigmas * math.sqrt(p * (1 - p) / n)


def test_unit_hash_is_the_pinned_formula() -> None:
    # Fixed values: sha256("gold_vip:C00042") starts with these 13 hex digits.
    digest = hashlib.sha256(b"gold_vip:C00042").hexdigest()
    assert unit_hash("gold_vip", "C00042") == int(digest[:13], 16) / 2**52
    for salt in ("gold_vip", "global_control", "spring 2026", "é-salt"):
        ids = ["C00001", "C99999", "", "ünïcode", "a:b", "123"]
        by_hand = [_by_hand(salt, c) for c in ids]
        assert [unit_hash(salt, c) for c in ids] == by_hand
        assert unit_hashes(salt, ids).tolist() == by_hand  # the vectorized path, bit for bit
    assert unit_hashes("s", []).shape == (0,)
    assert unit_hashes("s", np.array(["C1", "C2"], dtype=object)).tolist() == [
        _by_hand("s", "C1"),
        _by_hand("s", "C2"),
    ]


def test_unit_hash_is_uniform_and_52_bits() -> None:
    u = unit_hashes("seg", IDS)
    assert ((u >= 0) & (u < 1)).all()
    assert (u * 2**52 == np.floor(u * 2**52)).all()  # exact multiples of 2**-52
    for q in (0.1, 0.25, 0.5, 0.9):
        assert _within(int((u < q).sum()), len(u), q)


def test_holdout_and_splits_follow_the_pinned_rule() -> None:
    spec = GroupSpec("seg", 0.2, (("A", 0.5), ("B", 0.3), ("C", 0.2)))
    groups = spec.groups(IDS)
    for cid, group in zip(IDS[:500], groups[:500], strict=True):
        u = _by_hand("seg", cid)
        if u < 0.2:
            expected = HOLDOUT
        else:
            v = (u - 0.2) / 0.8
            expected = "A" if v < 0.5 else "B" if v < 0.8 else "C"
        assert group == expected, cid
    counts = Counter(groups)
    n = len(IDS)
    assert _within(counts[HOLDOUT], n, 0.2)
    for arm, share in (("A", 0.4), ("B", 0.24), ("C", 0.16)):
        assert _within(counts[arm], n, share), arm


def test_holdout_fraction_within_tolerance_and_target_otherwise() -> None:
    groups = groups_of(IDS, salt="lapsed_high_value", holdout=0.1)
    counts = Counter(groups)
    assert set(counts) == {HOLDOUT, TARGET}
    assert _within(counts[HOLDOUT], len(IDS), 0.1)
    assert Counter(groups_of(IDS, salt="x"))[TARGET] == len(IDS)  # no holdout: all targeted


def test_groups_are_independent_of_who_else_is_there() -> None:
    every = groups_of(IDS, salt="s", holdout=0.3, splits={"A": 0.5, "B": 0.5})
    full = dict(zip(IDS, every, strict=True))
    some = [*IDS[5000:5100], "NEW1", "NEW2"]
    part = groups_of(some, salt="s", holdout=0.3, splits={"A": 0.5, "B": 0.5})
    assert [full[c] for c in some[:100]] == list(part[:100])
    assert group_of("C05000", salt="s", holdout=0.3, splits={"A": 0.5, "B": 0.5}) == full["C05000"]


def test_salt_changes_the_assignment() -> None:
    a = groups_of(IDS, salt="one", holdout=0.5)
    b = groups_of(IDS, salt="two", holdout=0.5)
    agree = int((a == b).sum())
    assert _within(agree, len(IDS), 0.5)  # independent hashes agree half of the time


def test_global_control_overrides_every_segment() -> None:
    control = in_global_control(IDS, 0.05)
    assert _within(int(control.sum()), len(IDS), 0.05)
    assert control.tolist() == [_by_hand("global_control", c) < 0.05 for c in IDS]
    for salt in ("a", "b"):
        groups = groups_of(IDS, salt=salt, holdout=0.1, global_control=0.05)
        assert (groups[control] == GLOBAL_CONTROL).all()
        assert GLOBAL_CONTROL not in set(groups[~control])
    assert not in_global_control(IDS, 0.0).any()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        in_global_control(IDS, 1.0)


def test_postgresql_formula_gives_the_same_u_and_groups(pg_url: str) -> None:
    import sqlalchemy as sa

    ids = ["C00000", "C00042", "C09999", "ünïcode", "a:b", "", *IDS[100:140]]
    holdout, splits = 0.2, (("A", 0.5), ("B", 0.5))
    sql = sa.text(
        """
        WITH h AS (
          SELECT id,
            ('x' || lpad(substr(encode(sha256(convert_to(:salt || ':' || id, 'UTF8')), 'hex'),
                                1, 13), 16, '0'))::bit(64)::bigint / 4503599627370496.0 AS u,
            ('x' || lpad(substr(encode(sha256(convert_to('global_control' || ':' || id, 'UTF8')),
                                'hex'), 1, 13), 16, '0'))::bit(64)::bigint
              / 4503599627370496.0 AS g
          FROM unnest(CAST(:ids AS text[])) AS id
        )
        SELECT id, u::float8 AS u, CASE
            WHEN g < :control THEN 'global_control'
            WHEN u < :holdout THEN 'holdout'
            WHEN (u - :holdout) / (1 - :holdout) < 0.5 THEN 'A'
            ELSE 'B' END AS grp
        FROM h
        """
    )
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sql,
                {"salt": "ab_test", "ids": ids, "control": 0.05, "holdout": holdout},
            ).all()
    finally:
        engine.dispose()
    by_id = {r.id: (r.u, r.grp) for r in rows}
    ours = groups_of(ids, salt="ab_test", holdout=holdout, splits=splits, global_control=0.05)
    for cid, group in zip(ids, ours, strict=True):
        u_sql, group_sql = by_id[cid]
        assert abs(u_sql - unit_hash("ab_test", cid)) < 1e-15, cid
        assert group_sql == group, cid
    assert {g for _, g in by_id.values()} >= {"holdout", "A", "B"}
