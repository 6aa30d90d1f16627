"""The client's own request counter against the simulator's count (real HTTP server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import FaultConfig
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.usage import MemoryUsageStore

if TYPE_CHECKING:
    from xiva_source.simulator import XivaSimulator


def test_counts_are_the_requests_this_client_sent_retries_and_429s_included(
    sim: XivaSimulator,
) -> None:
    sim.set_faults(
        FaultConfig(kinds=("429",), count=2, retry_after="zero", paths={"customer_detail"})
    )
    with XivaClient(sim.base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0) as client:
        client.get_customer(sim.customer_ids()[0])
        counts = client.counts

    # login, 429, 429, the answer
    assert counts.requests == sim.counters()["total"] == 4
    assert (counts.throttled, counts.retries, counts.errors) == (2, 2, 0)


def test_the_memory_usage_counters_bucket_by_the_injected_clock() -> None:
    moments = iter(
        [datetime(2026, 1, 1, 10, 59, 59, tzinfo=UTC), datetime(2026, 1, 1, 11, 0, 1, tzinfo=UTC)]
    )
    store = MemoryUsageStore(clock=lambda: next(moments))
    store.record("customer_360", requests=1)
    store.record("customer_360", requests=1)

    at = datetime(2026, 1, 1, 11, 30, tzinfo=UTC)
    assert store.report(hours=1, now=at).totals.requests == 1  # the hour's own
    assert store.report(hours=2, now=at + timedelta(minutes=1)).totals.requests == 2
