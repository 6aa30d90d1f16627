"""The client's own request counter against the simulator's count (real HTTP server), and the
one recorder that adds each event to it and to the usage counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import FaultConfig
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.counts import RequestCounts, RequestRecorder
from xiva_source.xiva_api.errors import XivaNotFoundError
from xiva_source.xiva_api.usage import MemoryUsageStore, UsageCounts

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


def test_the_recorder_adds_each_event_once_to_the_clients_counts_and_the_usage_counters() -> None:
    at = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    usage = MemoryUsageStore(clock=lambda: at)
    recorder = RequestRecorder(usage)
    recorder.sent("customer_360", retry=False)
    recorder.throttled("customer_360")
    recorder.sent("customer_360", retry=True)
    recorder.failed("customer_list")

    assert recorder.counts == RequestCounts(requests=2, throttled=1, retries=1, errors=1)
    assert usage.report(hours=1, now=at).by_endpoint == {
        "customer_360": UsageCounts(requests=2, throttled=1, retries=1),
        "customer_list": UsageCounts(errors=1),
    }


def test_a_lone_clients_counts_and_its_usage_counters_agree(sim: XivaSimulator) -> None:
    sim.set_faults(
        FaultConfig(kinds=("429",), count=1, retry_after="zero", paths={"customer_detail"})
    )
    with XivaClient(sim.base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0) as client:
        client.get_customer(sim.customer_ids()[0])
        with pytest.raises(XivaNotFoundError):
            client.get_customer("nobody")
        counts, usage = client.counts, client.usage().totals

    assert (counts.requests, counts.throttled, counts.retries, counts.errors) == (4, 1, 1, 1)
    assert usage == UsageCounts(requests=4, throttled=1, retries=1, errors=1)
