"""iter_customers: both list shapes, ties at page boundaries, a set that shifts while paging, and
servers that break paging (a tiny local HTTP server plays the broken deployment)."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from tests.support.tiers import service
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.client import PAGE_SIZE, XivaClient
from xiva_source.xiva_api.errors import XivaBadResponseError


def _client(base_url: str) -> XivaClient:
    return XivaClient(base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0)


def _last_updates(sim: XivaSimulator) -> dict[str, datetime]:
    return {
        cid: datetime.fromisoformat(sim.customer(cid)["lastUpdate"].replace("Z", "+00:00"))
        for cid in sim.customer_ids()
    }


def _largest_tie(sim: XivaSimulator) -> tuple[datetime, list[str]]:
    updated = _last_updates(sim)
    moment, _ = Counter(updated.values()).most_common(1)[0]
    return moment, [cid for cid in sim.customer_ids() if updated[cid] == moment]


@pytest.mark.parametrize("shape", ["array", "drf"])
def test_every_customer_once_in_order_with_ties_across_pages(
    sim: XivaSimulator, shape: str
) -> None:
    sim.set_list_shape(shape)  # type: ignore[arg-type]
    _, tie = _largest_tie(sim)
    assert len(tie) > PAGE_SIZE  # the population does put ties across page boundaries
    ids = [c["id"] for c in _client(sim.base_url).iter_customers()]
    assert ids == sim.customer_ids()


def test_updated_since_lists_changes_at_or_after_it(sim: XivaSimulator) -> None:
    updated = _last_updates(sim)
    all_ids = sim.customer_ids()
    since = updated[all_ids[1500]]
    expected = [cid for cid in all_ids if updated[cid] >= since]
    got = [c["id"] for c in _client(sim.base_url).iter_customers(updated_since=since)]
    assert got == expected
    naive = since.replace(tzinfo=None)  # naive means UTC
    assert [c["id"] for c in _client(sim.base_url).iter_customers(naive)] == expected


def test_nothing_missed_when_tied_customers_move_between_pages(
    sim: XivaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xiva_source.xiva_api.client")
    moment, tie = _largest_tie(sim)
    updated = _last_updates(sim)
    expected = {cid for cid, at in updated.items() if at >= moment}
    got: list[str] = []
    for customer in _client(sim.base_url).iter_customers(updated_since=moment):
        got.append(customer["id"])
        if len(got) == PAGE_SIZE:  # the last customer of the first page
            # Customers already read at the cursor's lastUpdate change: everyone after them at that
            # instant shifts left by 45 positions, past the next page's offset.
            sim.update_customers(ids=[cid for cid in tie[:45] if cid in got])
            # And a few not yet read move to the end.
            sim.update_customers(ids=[cid for cid in tie[-5:] if cid not in got])
    assert len(got) == len(set(got))  # de-duplicated
    assert set(got) == expected  # nothing missed
    assert "shifted between pages" in caplog.text  # the anchor check did step back


def test_customers_changed_during_iteration_are_yielded_once(sim: XivaSimulator) -> None:
    got: list[str] = []

    def pull() -> Iterator[str]:
        for i, customer in enumerate(_client(sim.base_url).iter_customers()):
            if i % 300 == 299:
                sim.update_customers(count=40)  # some read, some not yet
            yield customer["id"]

    got = list(pull())
    assert len(got) == len(set(got)) == len(sim.customer_ids())
    assert set(got) == set(sim.customer_ids())


# -- broken deployments -------------------------------------------------------------------------

_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMH0.c2ln"


class _Broken(ThreadingHTTPServer):
    """A fake Xiva whose customer list misbehaves in the way ``mode`` says."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.list_calls = 0
        self.customers = [
            {"id": f"c{i:04d}", "lastUpdate": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
            for i in range(500)
        ]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _Handler(BaseHTTPRequestHandler):
    server: _Broken

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access": _TOKEN, "refresh": _TOKEN}).encode()
        self._send(200, body, "application/json")

    def do_GET(self) -> None:
        self.server.list_calls += 1
        mode = self.server.mode
        if mode == "html":
            page = "<html><head><style>p{}</style></head><body><h1>Welcome</h1>" + "x" * 500
            self._send(200, page.encode(), "text/html")
        elif mode == "shuffled":  # ignores ordering: a different order every time
            query = parse_qs(urlparse(self.path).query)
            offset, limit = int(query["offset"][0]), int(query["limit"][0])
            shuffled = list(self.server.customers)
            random.Random(self.server.list_calls).shuffle(shuffled)
            body = json.dumps(shuffled[offset : offset + limit]).encode()
            headers = {"X-Total-Count": str(len(shuffled))}
            self._send(200, body, "application/json", headers)
        elif mode == "wrong_shape":
            self._send(200, b'{"customers": []}', "application/json")
        else:  # "repeat": ignores offset and lastUpdate.gte, always the first page
            body = json.dumps(self.server.customers[:PAGE_SIZE]).encode()
            headers = {"X-Total-Count": str(len(self.server.customers))}
            self._send(200, body, "application/json", headers)


@pytest.fixture
@service("http")
def broken() -> Iterator[_Broken]:
    server = _Broken("repeat")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_repeated_page_is_reported_not_looped_on(broken: _Broken) -> None:
    got: list[str] = []
    with pytest.raises(XivaBadResponseError) as info:
        for customer in _client(broken.base_url).iter_customers():
            got.append(customer["id"])
    assert "same page twice" in str(info.value) or "no progress" in str(info.value)
    assert "offset" in str(info.value)
    assert got == [c["id"] for c in broken.customers[:PAGE_SIZE]]  # what was read is kept
    assert broken.list_calls <= 3


def test_an_html_page_is_a_bad_response_with_a_short_excerpt(broken: _Broken) -> None:
    broken.mode = "html"
    with pytest.raises(XivaBadResponseError) as info:
        next(_client(broken.base_url).iter_customers())
    err = info.value
    assert "an HTML page" in str(err) and "XIVA_API_BASE_URL" in str(err)
    assert err.status == 200 and err.body is not None
    assert err.body.startswith("Welcome") and len(err.body) <= 200 and "<" not in err.body
    assert broken.list_calls == 1  # not retried: the same URL gives the same page


def test_a_wrongly_shaped_list_is_a_bad_response(broken: _Broken) -> None:
    broken.mode = "wrong_shape"
    with pytest.raises(XivaBadResponseError, match="neither a JSON array nor a DRF page"):
        next(_client(broken.base_url).iter_customers())


def test_a_list_ignoring_the_ordering_is_reported(broken: _Broken) -> None:
    broken.mode = "shuffled"
    with pytest.raises(XivaBadResponseError, match="not sorted by lastUpdate"):
        list(_client(broken.base_url).iter_customers())
    assert broken.list_calls == 1
