"""Helpers of the incremental-refresh tests: their segments, random changes written the way the
writers write (marked first), what two keyspaces' memberships and events look like, and a child
process that refreshes and kills itself at a chosen function (a real crash mid-way)."""

from __future__ import annotations

import datetime as dt
import random
import sys
from typing import Any

import pandas as pd

from segmentation import Segment, SegmentEngine, read_events
from tests.support.segmentation.repo import FeastRepo, stored_rows, write_online

SEGMENTS = [
    Segment("paris_adults", [{">=": [{"var": "age"}, 30]}, {"==": [{"var": "city"}, "Paris"]}]),
    Segment("young", [{"<": [{"var": "age"}, 25]}], holdout=0.2),
    Segment(
        "lapsed",
        [{">": [{"var": "last_purchase_days_ago"}, 90]}, {">=": [{"var": "total_revenue"}, 500]}],
    ),
    Segment("recent", [{"<=": [{"var": "last_purchase_days_ago"}, 7]}]),
    Segment(
        "active",
        [{">=": [{"var": "transaction_count"}, 10]}],
        splits={"A": 0.5, "B": 0.5},
    ),
    Segment("no_status", [{"missing": ["customer_status"]}]),
    Segment("adults_not_lapsed", [{"segment": "paris_adults"}, {"!": {"segment": "lapsed"}}]),
]
"""Ageing thresholds (days and years), a holdout, splits, a missing-value rule, references."""

GLOBAL_CONTROL = 0.1


def engine_of(repo_path: Any, segments: list[Segment] | None = None) -> SegmentEngine:
    """The tests' engine over a repository: their segments, a global control group, no
    staleness (the clock moves by months)."""
    from feast import FeatureStore

    from xiva_source.settings import load_settings

    settings = load_settings(repo_path=repo_path, segments_global_control=GLOBAL_CONTROL)
    store = FeatureStore(repo_path=str(repo_path))
    return SegmentEngine(store, segments or SEGMENTS, settings=settings, max_age=None)


CITIES = ["Paris", "Lyon", "Toronto", None]
STATUSES = ["active", "churned", None]


def base_rows(repo: FeastRepo) -> dict[str, dict[str, Any]]:
    """The repository's stored rows, by customer id (what :func:`random_changes` changes)."""
    frame = stored_rows(repo.frame).set_index("customer_id")
    return {
        str(c): {str(k): v for k, v in row.items()} for c, row in frame.to_dict("index").items()
    }


def random_changes(
    rng: random.Random, rows: dict[str, dict[str, Any]], at: dt.datetime, n: int, new: int
) -> pd.DataFrame:
    """``n`` existing customers changed at random and ``new`` new ones (``rows``: the stored
    rows by customer id, updated in place); returns the rows to write."""
    ids = rng.sample(sorted(rows), n)
    start = len([c for c in rows if c.startswith("N")])
    ids += [f"N{start + i:05d}" for i in range(new)]
    template = next(iter(rows.values()))
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for cid in ids:
        row = dict(rows.get(cid, template))
        row.update(
            {
                "total_revenue": rng.choice([None, 100.0, 600.0, 2500.0]),
                "transaction_count": rng.choice([None, 2, 12, 30]),
                "city": rng.choice(CITIES),
                "customer_status": rng.choice(STATUSES),
                "birth_date": day - dt.timedelta(days=rng.randint(17 * 365, 40 * 365)),
                "last_payment_date": rng.choice(
                    [None, day - dt.timedelta(days=rng.randint(0, 120))]
                ),
                "event_timestamp": at,
            }
        )
        rows[cid] = row
        out.append({"customer_id": cid, **row})
    frame = pd.DataFrame(out)
    frame["transaction_count"] = frame["transaction_count"].astype("Int64")
    return stored_rows(frame)


def stored_rows_of(
    rows: dict[str, dict[str, Any]], ids: list[str], at: dt.datetime
) -> pd.DataFrame:
    """The rows of ``ids`` stamped ``at``, as written."""
    frame = pd.DataFrame([{"customer_id": c, **rows[c], "event_timestamp": at} for c in ids])
    frame["transaction_count"] = frame["transaction_count"].astype("Int64")
    return stored_rows(frame)


def write_both(repos: list[FeastRepo], rows: pd.DataFrame) -> None:
    """Write ``rows`` to every repository as the writers do (marked, then written)."""
    for repo in repos:
        write_online(repo.store, "customer_features", rows)


def delete_customers(engines: list[SegmentEngine], ids: list[str]) -> None:
    """Delete the customers' keys as a writer that deletes would: marked first."""
    from segmentation.journal import mark_changed

    for engine in engines:
        mark_changed(engine.reader.client, engine.project, ids)
        engine.reader.client.delete(*(engine.reader.key(c) for c in ids))


def stored_state(engine: SegmentEngine) -> dict[str, Any]:
    """Every segment's stored members with their groups, and its history."""
    out: dict[str, Any] = {}
    for name in engine.segments:
        members = engine.stored_members(name)
        out[name] = {
            "members": engine.memberships.groups_of(name, members),
            "history": engine.history(name),
        }
    return out


def events_by_segment(engine: SegmentEngine) -> dict[str, list[tuple[str, ...]]]:
    """The event stream, per segment in stream order, without the entry ids."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for e in read_events(engine.reader.client, engine.memberships.events_key()):
        out.setdefault(e.segment, []).append((e.event, e.customer_id, e.group, e.time))
    return out


# A child process: refresh the repository's segments as of a moment, and kill itself (SIGKILL)
# when the function named on the command line is first called: a crash at that point.
CHILD = r"""
import datetime as dt, os, signal, sys
from tests.support.segmentation.incremental import engine_of

repo, when, victim = sys.argv[1], dt.datetime.fromisoformat(sys.argv[2]), sys.argv[3]

def profile(frame, event, arg):
    code = frame.f_code
    if event == "call" and code.co_name == victim and "segmentation" in code.co_filename:
        os.kill(os.getpid(), signal.SIGKILL)

engine = engine_of(repo)
sys.setprofile(profile)
engine.refresh(now=when)
sys.setprofile(None)
print("finished")
"""


def child_command(repo: FeastRepo, when: dt.datetime, victim: str) -> list[str]:
    """The command of a child refresh that dies when ``victim`` is called."""
    return [sys.executable, "-c", CHILD, str(repo.path), when.isoformat(), victim]
