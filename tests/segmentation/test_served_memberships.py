"""End to end on the project's feature_repo, the simulator, Redis and PostgreSQL: a customer changed
in Xiva and refreshed live joins its segment once (one event), the next batch refresh publishes
nothing more, and Feast serves features and segments in one ``get_online_features`` call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from feast import FeatureStore

from segmentation import MembershipStore, SegmentEngine, read_events
from tests.support.feast import FeastEnv
from xiva_source.cli import main as xiva_cli
from xiva_source.cli import segmentation_main as segmentation_cli
from xiva_source.jobs.materialize import run_materialization

REFS = [
    "customer_features:customer_tier",
    "customer_features:total_revenue",
    "customer_segments:segments",
    "customer_segments:segment_groups",
]


def _write_segments(where: Path, vip_range: tuple[float, float] | None) -> None:
    low, high = vip_range if vip_range else (1.0, -1.0)  # an empty range: nobody
    vip = {
        "name": "vip_now",
        "rules": [
            {"name": "from", "rule": {">=": [{"var": "total_revenue"}, low]}},
            {"name": "to", "rule": {"<=": [{"var": "total_revenue"}, high]}},
        ],
    }
    payers = {
        "name": "payers",
        "holdout": 0.3,
        "rules": [
            {"name": "paid", "rule": {">": [{"var": "total_revenue"}, 0 if vip_range else 1e12]}}
        ],
    }
    for doc in (vip, payers):
        (where / f"{doc['name']}.json").write_text(json.dumps(doc))


def _served(store: FeatureStore, ids: list[str]) -> dict[str, list[Any]]:
    rows = store.get_online_features(
        features=REFS, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()
    return {name: rows[name] for name in ("customer_id", *[r.split(":")[1] for r in REFS])}


def _stored(memberships: MembershipStore, cid: str) -> tuple[list[str], list[str]]:
    segments, groups = [], []
    for name in ("payers", "vip_now"):
        group = memberships.group_of(name, cid)
        if group is not None:
            groups.append(f"{name}:{group}")
            if group not in ("holdout", "global_control"):
                segments.append(name)
    return segments, groups


def _loaded(
    feast_env: FeastEnv, feast_repo: Path, tmp_path: Path
) -> tuple[list[str], FeatureStore, Path]:
    """The repository materialized, an empty SEGMENTS_DIR: (``--repo`` args, store, segments)."""
    assert run_materialization(str(feast_repo), progress=False).status == "ok"
    segments_dir = tmp_path / "segments"
    segments_dir.mkdir()
    feast_env.monkeypatch.setenv("SEGMENTS_DIR", str(segments_dir))
    return ["--repo", str(feast_repo)], FeatureStore(repo_path=str(feast_repo)), segments_dir


def test_live_refresh_joins_once_and_memberships_are_served_with_the_features(
    feast_env: FeastEnv, feast_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, store, segments_dir = _loaded(feast_env, feast_repo, tmp_path)

    # The customer's revenue after the change in Xiva decides the segment vip_now.
    cid = feast_env.dwh.shared_ids[5]
    before = _served(store, [cid])["total_revenue"][0]
    feast_env.sim.update_customers(ids=[cid])
    after = float(feast_env.sim.view_360(cid)["financial"]["total_bills"])
    assert before is None or abs(before - after) > 0.01
    _write_segments(segments_dir, (after - 0.005, after + 0.005))

    assert segmentation_cli([*repo, "refresh"]) == 0
    capsys.readouterr()
    engine = SegmentEngine(store)
    memberships = engine.memberships
    key = memberships.events_key()
    events = read_events(memberships.client, key)
    assert events and cid not in {e.customer_id for e in events if e.segment == "vip_now"}
    mark = events[-1].id

    # Batch memberships are served: one call, features and segments.
    ids = [*sorted({e.customer_id for e in events})[:20], cid]
    served = _served(store, ids)
    assert any(served["segments"]) and any(t is not None for t in served["customer_tier"])
    for revenue, groups in zip(served["total_revenue"], served["segment_groups"], strict=True):
        if any(g.startswith("payers:") for g in groups or []):
            assert revenue > 0  # the features of the same row, from the same call
    for i, c in enumerate(ids):
        segs, groups = _stored(memberships, c)
        assert sorted(served["segments"][i] or []) == segs, c
        assert sorted(served["segment_groups"][i] or []) == groups, c

    # Live refresh of the changed customer: features written, then exactly one `joined`.
    assert xiva_cli(["refresh", cid, *repo]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["customer_id"] == cid
    assert "segments: joined vip_now (target)" in out.err
    new = read_events(memberships.client, key, since=mark)
    assert [(e.event, e.segment, e.customer_id, e.group) for e in new] == [
        ("joined", "vip_now", cid, "target")
    ]
    assert memberships.is_member("vip_now", cid)
    served = _served(store, [cid])
    assert served["total_revenue"][0] == pytest.approx(after)
    assert "vip_now" in served["segments"][0]
    assert served["segments"][0] == _stored(memberships, cid)[0]

    # The next batch refresh finds nothing new for the customer: nothing more published.
    assert segmentation_cli([*repo, "refresh"]) == 0
    capsys.readouterr()
    assert read_events(memberships.client, key, since=mark) == new
    assert segmentation_cli([*repo, "events", "--json", "--customer", cid, "--count", "0"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    vip_lines = [d for d in lines if d["segment"] == "vip_now"]
    assert [(d["event"], d["customer_id"], d["group"]) for d in vip_lines] == [
        ("joined", cid, "target")
    ]
    assert set(vip_lines[0]) >= {"event", "segment", "customer_id", "group", "time"}

    # Everybody leaves every segment: each former member is served an empty list.
    members = sorted(set(memberships.members("payers")) | set(memberships.members("vip_now")))
    _write_segments(segments_dir, None)
    assert segmentation_cli([*repo, "refresh"]) == 0
    served = _served(store, members)
    assert served["segments"] == [[] for _ in members]
    assert served["segment_groups"] == [[] for _ in members]


def test_a_segment_error_does_not_fail_the_live_refresh(
    feast_env: FeastEnv, feast_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segments_dir = tmp_path / "segments"
    segments_dir.mkdir()
    (segments_dir / "broken.json").write_text('{"name": "broken", "rules": [{"nope": 1}]}')
    feast_env.monkeypatch.setenv("SEGMENTS_DIR", str(segments_dir))
    cid = feast_env.sim.customer_ids()[3]
    assert xiva_cli(["refresh", cid, "--repo", str(feast_repo)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["customer_id"] == cid
    assert "error: segments" in out.err and "broken" in out.err
    assert xiva_cli(["refresh", cid, "--repo", str(feast_repo), "--no-segments"]) == 0
    assert "segments" not in capsys.readouterr().err


def test_served_lists_a_killed_refresh_left_unwritten_are_written_by_the_next(
    feast_env: FeastEnv, feast_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from segmentation.served import ServedMemberships, queue_pending

    repo, store, segments_dir = _loaded(feast_env, feast_repo, tmp_path)
    _write_segments(segments_dir, (0.0, 1e12))
    assert segmentation_cli([*repo, "refresh"]) == 0
    engine = SegmentEngine(store)
    memberships = engine.memberships
    pending = f"{memberships.prefix}:serve-pending"
    assert memberships.client.hlen(pending) == 0  # written, so its record removed
    ids = sorted(memberships.members("vip_now"))[:10]
    assert ids and all(_served(store, ids)["segments"])

    # What a full refresh killed after its switch, while writing the lists, leaves: its record,
    # and lists still from before the switch (here: empty).
    served = ServedMemberships.of(engine)
    assert served is not None
    served.write({cid: {} for cid in ids})
    queue_pending(memberships.client, memberships, None)
    assert _served(store, ids)["segments"] == [[] for _ in ids]

    # The next refresh (nothing changed: incremental) writes them before anything else.
    assert segmentation_cli([*repo, "refresh"]) == 0
    capsys.readouterr()
    got = _served(store, ids)
    for i, cid in enumerate(ids):
        assert sorted(got["segments"][i] or []) == _stored(memberships, cid)[0], cid
    assert memberships.client.hlen(pending) == 0
