"""Control groups and splits: segment files, the engine's groups, memberships and exports, on a
real Feast repository of 10,000 customers in the real Redis."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from segmentation import (
    RuleError,
    Segment,
    SegmentEngine,
    SegmentFileError,
    check_segments_dir,
    load_segments,
    unit_hash,
)
from tests.support.segmentation.repo import (
    FeastRepo,
    _customer_rows,
    build_repo,
    delete_project_keys,
    stored_rows,
    with_counts,
    write_online,
)
from xiva_source.settings import load_settings

N = 10_000
GLOBAL_CONTROL = 0.05
KNOWN_AGE = {">=": [{"var": "age"}, 0]}  # every customer with a known age (18 of 19)

SEGMENTS = [
    Segment("held", [KNOWN_AGE], holdout=0.1),
    Segment("ab", [KNOWN_AGE], holdout=0.2, splits={"A": 0.5, "B": 0.3, "C": 0.2}, salt="ab-2026"),
    Segment("plain", [KNOWN_AGE]),
    Segment("of_held", [{"segment": "held"}, {"==": [{"var": "city"}, "Paris"]}]),
]


def _within(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(observed / n - p) < sigmas * math.sqrt(p * (1 - p) / n)


# --- the segment file -----------------------------------------------------------------------


def test_holdout_splits_and_salt_round_trip() -> None:
    data = {
        "name": "ab",
        "description": "a test",
        "rules": [{"name": "rule1", "rule": KNOWN_AGE}],
        "holdout": 0.1,
        "splits": {"B": 0.25, "A": 0.75},
        "salt": "campaign-7",
    }
    seg = Segment.from_dict(data)
    assert seg.to_dict() == data and list(seg.to_dict()["splits"]) == ["B", "A"]  # file order
    assert Segment.from_dict(seg.to_dict()) == seg
    default = Segment("plain", [KNOWN_AGE])
    assert "holdout" not in default.to_dict() and default.salt == "plain"
    assert Segment.from_dict({"name": "n", "rules": [KNOWN_AGE], "holdout": 0}).holdout == 0.0
    assert Segment("s", [KNOWN_AGE], splits={"A": 0.1, "B": 0.2, "C": 0.7}).splits["C"] == 0.7


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"holdout": 1}, "0 <= holdout < 1, got 1"),
        ({"holdout": -0.1}, "0 <= holdout < 1"),
        ({"holdout": "10%"}, "holdout must be a number"),
        ({"holdout": True}, "holdout must be a number"),
        ({"splits": {"A": 0.5}}, "sum to 0.5, not 1"),
        ({"splits": {"A": 0.5, "B": 0.5000001}}, "not 1"),
        ({"splits": {"A": 1.0, "B": 0}}, "arm 'B' must be a number > 0"),
        ({"splits": {"holdout": 1.0}}, "'holdout' is reserved"),
        ({"splits": {"global_control": 1.0}}, "reserved"),
        ({"splits": {"target": 1.0}}, "reserved"),
        ({"splits": {"": 1.0}}, "not a non-empty string"),
        ({"splits": ["A", "B"]}, "non-empty mapping"),
        ({"splits": {}}, "non-empty mapping"),
        ({"salt": ""}, "salt must be a non-empty string"),
        ({"salt": ["x"]}, "salt must be"),
    ],
)
def test_invalid_holdout_splits_salt_name_segment_problem_fix(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(RuleError, match=message) as info:
        Segment.from_dict({"name": "bad_one", "rules": [KNOWN_AGE], **options})
    assert info.value.segment == "bad_one" and info.value.fix
    assert "segment 'bad_one'" in str(info.value) and "Fix: " in str(info.value)


def test_splits_sum_tolerates_float_rounding() -> None:
    fractions = {"A": 0.7, "B": 0.1, "C": 0.1, "D": 0.1}
    assert sum(fractions.values()) != 1.0  # 0.9999999999999999: within 1e-9 of 1, accepted
    seg = Segment("s", [KNOWN_AGE], splits=fractions)
    groups = seg.groups([f"C{i}" for i in range(2000)])
    assert set(groups) == {"A", "B", "C", "D"}  # the last arm takes the rounding


def test_loader_names_the_file_of_a_bad_holdout(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(
        "name: ok\nholdout: 0.1\nsplits: {A: 0.5, B: 0.5}\n"
        "rules:\n  - {'>=': [{'var': 'age'}, 0]}\n"
    )
    (tmp_path / "bad.json").write_text(
        json.dumps({"name": "bad", "rules": [KNOWN_AGE], "splits": {"A": 0.6, "B": 0.6}})
    )
    segments, errors = check_segments_dir(tmp_path, feature_names={"age"})
    assert [s.name for s in segments] == ["ok"]
    assert segments[0].holdout == 0.1 and segments[0].splits == {"A": 0.5, "B": 0.5}
    assert len(errors) == 1 and "bad.json: segment 'bad'" in str(errors[0])
    assert "sum to 1.2" in str(errors[0])
    with pytest.raises(SegmentFileError, match=r"bad\.json"):
        load_segments(tmp_path, feature_names={"age"})


# --- the engine on 10,000 customers -------------------------------------------------------------


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[FeastRepo]:
    project = f"segsplit_{uuid.uuid4().hex[:10]}"
    repo = build_repo(tmp_path_factory.mktemp("split_repo"), project, N, redis_url)
    yield repo
    delete_project_keys(project, redis_url)


@pytest.fixture(scope="module")
def engine(big_repo: FeastRepo) -> SegmentEngine:
    settings = load_settings(repo_path=big_repo.path, segments_global_control=GLOBAL_CONTROL)
    return SegmentEngine(big_repo.store, SEGMENTS, settings=settings)


def _rewrite(repo: FeastRepo, ids: list[str], *, age: int | None, minutes: int) -> None:
    """Write ``ids`` again with ``age`` (None: unknown, so out of every segment here)."""
    rows = _customer_rows(len(ids), repo.now)
    rows["customer_id"] = ids
    with_counts(rows, repo.now, age=[age] * len(ids))  # stored as its fact, birth_date
    rows["city"] = "Paris"
    rows["event_timestamp"] = repo.now - dt.timedelta(minutes=60 - minutes)
    write_online(repo.store, "customer_features", stored_rows(rows))


def test_holdout_and_split_fractions_within_tolerance(engine: SegmentEngine) -> None:
    held = engine.members_with_groups("held")
    assert list(held.columns) == ["customer_id", "group"]
    n = len(held)
    assert n > 9000
    counts = Counter(held["group"])
    assert set(counts) == {"holdout", "global_control", "target"}
    assert _within(counts["global_control"], n, GLOBAL_CONTROL)
    assert _within(counts["holdout"], n, 0.1 * (1 - GLOBAL_CONTROL))
    ab = Counter(engine.members_with_groups("ab")["group"])
    assert set(ab) == {"holdout", "global_control", "A", "B", "C"}
    rest = 1 - GLOBAL_CONTROL
    assert _within(ab["holdout"], n, 0.2 * rest)
    for arm, share in (("A", 0.5), ("B", 0.3), ("C", 0.2)):
        assert _within(ab[arm], n, 0.8 * share * rest), arm
    # Every group is the pinned hash of the id and the salt (the name, or `salt`).
    for cid, group in held.head(300).itertuples(index=False):
        if unit_hash("global_control", cid) < GLOBAL_CONTROL:
            assert group == "global_control"
        else:
            assert group == ("holdout" if unit_hash("held", cid) < 0.1 else "target")


def test_global_control_is_in_no_segment_target(engine: SegmentEngine) -> None:
    frames = {name: engine.members_with_groups(name) for name in ("held", "ab", "plain")}
    control = {c for c in frames["plain"]["customer_id"] if unit_hash("global_control", c) < 0.05}
    assert control
    for name, frame in frames.items():
        in_control = frame[frame["customer_id"].isin(control)]
        assert (in_control["group"] == "global_control").all(), name
        assert "global_control" not in set(frame[~frame["customer_id"].isin(control)]["group"])
    assert set(frames["plain"]["group"]) == {"global_control", "target"}


def test_refresh_stores_groups_stable_across_refreshes_and_population_changes(
    engine: SegmentEngine, big_repo: FeastRepo
) -> None:
    engine.refresh(now=big_repo.now)
    first = {n: engine.members_with_groups(n) for n in ("held", "ab")}
    stored = dict(zip(first["ab"]["customer_id"], first["ab"]["group"], strict=True))
    sample = list(stored)[:200]
    assert {c: engine.group_of("ab", c) for c in sample} == {c: stored[c] for c in sample}
    for c in sample:  # targeted members only: not held out, not in the global control
        assert engine.is_member("ab", c) is (stored[c] not in ("holdout", "global_control"))
    outsider = str(big_repo.frame.index[big_repo.frame["age"].isna().to_numpy()][0])
    assert engine.group_of("ab", outsider) is None and not engine.is_member("ab", outsider)

    engine.refresh(now=big_repo.now + dt.timedelta(minutes=1))  # a second refresh: same groups
    assert engine.memberships.groups_of("ab", sample) == {c: stored[c] for c in sample}

    # The population changes: 300 customers leave (age unknown), 200 new ones arrive.
    leavers = list(stored)[1000:1300]
    newcomers = [f"N{i:05d}" for i in range(200)]
    _rewrite(big_repo, leavers, age=None, minutes=2)
    _rewrite(big_repo, newcomers, age=40, minutes=2)
    result = engine.refresh(now=big_repo.now + dt.timedelta(minutes=2))
    assert sorted(result["ab"].left) == sorted(leavers)
    assert sorted(result["ab"].joined) == newcomers
    after = engine.memberships.groups_of("ab", list(stored) + newcomers)
    stayed = [c for c in stored if c not in set(leavers)]
    assert {c: after[c] for c in stayed} == {c: stored[c] for c in stayed}  # others keep theirs
    assert all(c not in after for c in leavers)
    assert {after[c] for c in newcomers} <= {"holdout", "global_control", "A", "B", "C"}

    # The leavers come back: each gets the group it had.
    _rewrite(big_repo, leavers, age=50, minutes=3)
    result = engine.refresh(now=big_repo.now + dt.timedelta(minutes=3))
    assert sorted(result["ab"].joined) == sorted(leavers)
    back = engine.memberships.groups_of("ab", leavers)
    assert back == {c: stored[c] for c in leavers}
    assert len({stored[c] for c in leavers}) > 2  # a real mix of groups came back


def test_references_see_held_out_customers(engine: SegmentEngine) -> None:
    held = engine.members_with_groups("held")
    of_held = set(engine.members("of_held"))
    held_out = set(held[held["group"] == "holdout"]["customer_id"])
    assert of_held and of_held & held_out  # eligibility, not targeting (pins #2)
    table = engine.evaluate(segments=["of_held"])
    assert of_held == set(table.index[table["of_held"]]) and of_held <= set(held["customer_id"])


def test_export_carries_the_group_column(
    engine: SegmentEngine, big_repo: FeastRepo, tmp_path: Path
) -> None:
    engine.refresh(now=big_repo.now + dt.timedelta(minutes=4))
    n = engine.export("ab", tmp_path / "ab.csv")
    csv = pd.read_csv(tmp_path / "ab.csv", dtype=str, keep_default_na=False)
    assert list(csv.columns) == ["customer_id", "group"] and len(csv) == n
    expected = engine.members_with_groups("ab")
    assert csv.to_dict("list") == expected.to_dict("list")
    engine.export("ab", tmp_path / "ab.parquet", stored=True, with_features=True)
    pq = pd.read_parquet(tmp_path / "ab.parquet")
    assert list(pq.columns) == ["customer_id", "group", "age"]
    assert pq[["customer_id", "group"]].to_dict("list") == expected.to_dict("list")
    assert set(pq["group"]) == {"holdout", "global_control", "A", "B", "C"}


# --- the stored groups (MembershipStore) ---------------------------------------------------------


def test_membership_store_keeps_groups_with_each_generation(redis_url: str, redis_ns: str) -> None:
    import redis

    from segmentation.memberships import MembershipStore

    client = redis.Redis.from_url(redis_url)
    store = MembershipStore(client, redis_ns)
    groups = {"a": "holdout", "b": "A", "c": "global_control", "d": "target"}
    store.store_many({"s": ["a", "b", "c", "d", "e"]}, groups={"s": groups})
    assert [store.group_of("s", c) for c in "abcdef"] == [
        "holdout", "A", "global_control", "target", "target", None,
    ]  # fmt: skip
    assert [store.is_member("s", c) for c in "abcdef"] == [False, True, False, True, True, False]
    assert store.groups_of("s", ["a", "e", "zz"]) == {"a": "holdout", "e": "target"}
    first = store.generation("s")
    assert first is not None
    # Only the members not `target` are in the hash (a member absent from it is `target`).
    assert client.hgetall(store.generation_key(first, "groups", "s")) == {
        b"a": b"holdout", b"b": b"A", b"c": b"global_control",
    }  # fmt: skip
    store.store_many({"s": ["a", "b"]}, groups={"s": {"a": "holdout", "b": "B"}})
    assert [store.group_of("s", c) for c in "abc"] == ["holdout", "B", None]
    store.store_many({"s": ["b"]})  # no groups given: every member is `target`
    assert store.group_of("s", "b") == "target" and store.is_member("s", "b")
    assert not client.exists(store.generation_key(first, "groups", "s"))  # two refreshes old
    store.delete("s")
    assert not list(client.scan_iter(match=f"{store.prefix}:gen:*"))
    client.close()
