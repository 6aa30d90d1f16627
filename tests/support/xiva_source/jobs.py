"""Helpers of the fallback and guard tests: a DWH of the test's own, the merged truth, reads.

The merged truth is what a fresh full run with every source up writes into an empty online
store (a second repository, project and snapshot table of the test's own): after any sequence of
runs, outages and recoveries, the next run must leave every customer equal to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import sqlalchemy as sa

from tests.support.feast import make_repo
from tests.support.services import REDIS_URL

if TYPE_CHECKING:
    from feast import FeatureStore

VIEWS = ("customer_features", "customer_dwh_features")


def store_of(repo: Path) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def refs(repo: Path) -> list[str]:
    """Every stored feature of both views, as ``view:feature`` references."""
    store = store_of(repo)
    return [f"{view}:{f.name}" for view in VIEWS for f in store.get_feature_view(view).features]


def online(repo: Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Every stored feature of ``ids``, per customer, read through Feast."""
    names = refs(repo)
    data = (
        store_of(repo)
        .get_online_features(
            features=names,
            entity_rows=[{"customer_id": c} for c in ids],
            full_feature_names=True,
        )
        .to_dict()
    )
    out: dict[str, dict[str, Any]] = {}
    for i, cid in enumerate(data["customer_id"]):
        out[cid] = {n.replace(":", "__"): data[n.replace(":", "__")][i] for n in names}
    return out


def differences(
    got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]
) -> list[tuple[str, str, Any, Any]]:
    """``(customer, feature, got, want)`` for every cell that differs (floats to 1e-9)."""
    diffs = []
    for cid, row in want.items():
        for name, value in row.items():
            other = got.get(cid, {}).get(name)
            same = other == value or (
                isinstance(other, float) and isinstance(value, float) and abs(other - value) < 1e-9
            )
            if not same:
                diffs.append((cid, name, other, value))
    return diffs


class Truth:
    """A second repository whose full run, every source up, is the merged truth."""

    def __init__(self, tmp_path: Path) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.project = f"truth_{suffix}"
        self.snapshot_table = f"snaptruth_{suffix}"
        self.repo = make_repo(tmp_path / "truth", self.project, snapshot_table=self.snapshot_table)

    def values(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The merged truth of ``ids`` now (a full run of the truth repository first)."""
        from xiva_source.jobs.materialize import run_materialization

        summary = run_materialization(self.repo, progress=False, full=True)
        assert summary.status == "ok" and not summary.report.fallbacks, summary.line()
        return online(self.repo, ids)

    def cleanup(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"*{self.project}", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def touch_dwh(url: str, ids: list[str], at: datetime, *, revenue_delta: float = 1.0) -> None:
    """Change ``ids``' DWH rows (revenue, churn score) and stamp them ``at``."""
    from xiva_source.dwh import get_engine

    with get_engine(url).begin() as conn:
        for cid in ids:
            conn.execute(
                sa.text(
                    "UPDATE customer_features_view SET total_revenue = "
                    "COALESCE(total_revenue, 0) + :d, churn_score = 0.5, updated_at = :at "
                    "WHERE CAST(customer_id AS TEXT) = :id"
                ),
                {"d": revenue_delta, "at": at.replace(tzinfo=None), "id": cid},
            )


def all_ids(sim: Any, dwh: Any) -> list[str]:
    """Every customer of either source."""
    return sorted(set(sim.customer_ids()) | set(dwh.customer_ids))


def iter_project_keys(project: str) -> Iterator[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield from client.scan_iter(match=f"*{project}", count=1000)
    finally:
        client.close()
