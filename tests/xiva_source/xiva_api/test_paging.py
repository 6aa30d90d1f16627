"""CustomerCursor on plain lists of pages: no HTTP, no simulator.

A "server" here is a ``fetch_page(offset, limit, since)`` function over a list of customers (sane:
filters, sorts by ``(lastUpdate, id)`` and slices), or a script of pages (broken deployments).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from xiva_source.timeutil import parse_iso, to_iso
from xiva_source.xiva_api.errors import XivaBadResponseError
from xiva_source.xiva_api.paging import CustomerCursor, RawPage, parse_customer_page

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Customer = dict[str, Any]


def _customer(cid: str, minutes: int) -> Customer:
    return {"id": cid, "lastUpdate": to_iso(T0 + timedelta(minutes=minutes))}


def _population() -> list[Customer]:
    """23 customers; 9 share one instant and 6 another, so ties cross page boundaries."""
    minutes = [0, 1, 2, *[5] * 9, 6, 7, *[9] * 6, 10, 11, 12]
    return [_customer(f"c{i:02d}", m) for i, m in enumerate(minutes)]


def _ordered(customers: list[Customer], since: datetime | None = None) -> list[Customer]:
    rows = [c for c in customers if since is None or parse_iso(c["lastUpdate"]) >= since]
    return sorted(rows, key=lambda c: (parse_iso(c["lastUpdate"]), c["id"]))


def _server(customers: list[Customer], shape: str = "array") -> Callable[..., Any]:
    """A sane list endpoint over ``customers`` (read at each call, so tests may change it)."""

    def fetch(offset: int, limit: int, since: datetime | None) -> Any:
        rows = _ordered(customers, since)
        page = rows[offset : offset + limit]
        if shape == "array":  # a bare array, no total: a short page is the last
            return page
        if shape == "total":  # a bare array with X-Total-Count
            return RawPage(page, total_count=len(rows))
        more = offset + limit < len(rows)
        return {"count": len(rows), "next": "http://x/?page=n" if more else None, "results": page}

    return fetch


def _script(*pages: Any) -> Callable[..., Any]:
    """A server answering ``pages`` in turn, whatever is asked (then empty pages)."""
    answers: Iterator[Any] = iter(pages)

    def fetch(offset: int, limit: int, since: datetime | None) -> Any:
        return next(answers, [])

    return fetch


def _ids(customers: Any) -> list[str]:
    return [c["id"] for c in customers]


@pytest.mark.parametrize("shape", ["array", "total", "drf"])
def test_every_customer_once_in_order_with_ties_across_pages(shape: str) -> None:
    population = _population()
    cursor = CustomerCursor(_server(population, shape), page_size=4)
    assert _ids(cursor) == _ids(_ordered(population))
    assert cursor.requests >= len(population) // 3  # each page re-reads its anchor


def test_updated_since_filters_and_a_naive_datetime_is_utc() -> None:
    population = _population()
    since = T0 + timedelta(minutes=5)
    expected = _ids(_ordered(population, since))
    assert _ids(CustomerCursor(_server(population), updated_since=since, page_size=4)) == expected
    naive = since.replace(tzinfo=None)
    assert _ids(CustomerCursor(_server(population), updated_since=naive, page_size=4)) == expected


def test_the_cursor_asks_for_the_anchor_of_the_next_page() -> None:
    calls: list[tuple[int, int, datetime | None]] = []
    population = _population()
    serve = _server(population)

    def fetch(offset: int, limit: int, since: datetime | None) -> Any:
        calls.append((offset, limit, since))
        return serve(offset, limit, since)

    list(CustomerCursor(fetch, page_size=4))
    assert calls[0] == (0, 4, None)
    # Page 1 ends at c03 (minute 5, the first of 9 tied): re-read it, from minute 5.
    assert calls[1] == (0, 4, T0 + timedelta(minutes=5))
    # Page 2 holds c03..c06 (all minute 5): the cursor stays, the offset moves to the anchor c06.
    assert calls[2] == (3, 4, T0 + timedelta(minutes=5))


def test_nothing_missed_when_tied_customers_move_between_pages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="xiva_source.xiva_api.client")
    population = _population()
    expected = {c["id"] for c in population}
    serve = _server(population)
    got: list[str] = []
    for customer in CustomerCursor(serve, page_size=4):
        got.append(customer["id"])
        if customer["id"] == "c05":  # mid-tie: the tied customers read so far change
            for c in population:
                if c["id"] in {"c03", "c04", "c05"}:
                    c["lastUpdate"] = to_iso(T0 + timedelta(minutes=30))
    assert len(got) == len(set(got))  # de-duplicated
    assert set(got) == expected  # nothing missed
    assert "shifted between pages" in caplog.text  # the anchor check did step back


def test_drf_next_null_ends_even_on_a_full_page() -> None:
    page = {"count": None, "next": None, "results": [_customer("a", 0), _customer("b", 1)]}
    cursor = CustomerCursor(_script(page, page), page_size=2)
    assert _ids(cursor) == ["a", "b"]
    assert cursor.requests == 1


def test_a_repeated_page_is_reported_after_what_was_read() -> None:
    first = [_customer(f"c{i}", i) for i in range(4)]
    cursor = CustomerCursor(_script(first, list(first), list(first)), page_size=4)
    got: list[str] = []
    with pytest.raises(XivaBadResponseError, match="returned the same page twice") as info:
        for customer in cursor:
            got.append(customer["id"])
    assert got == _ids(first)  # what was read is kept
    assert "offset" in str(info.value) and "DWH" in str(info.value)
    assert cursor.requests == 2
    assert list(cursor) == []  # a failed cursor is finished, it does not loop


def test_an_unsorted_page_is_reported_before_anything_is_returned() -> None:
    page = [_customer("a", 5), _customer("b", 1)]
    cursor = CustomerCursor(_script(page), page_size=4)
    with pytest.raises(XivaBadResponseError, match="not sorted by lastUpdate"):
        next(cursor)
    assert cursor.requests == 1


def test_customers_older_than_the_cursor_are_reported_after_the_page() -> None:
    first = RawPage([_customer("a", 1), _customer("b", 2), _customer("c", 3)], total_count=10)
    older = RawPage([_customer("d", 1), _customer("e", 2)], total_count=10, status=200, url="u")
    got: list[str] = []
    with pytest.raises(XivaBadResponseError, match=r"older than lastUpdate\.gte") as info:
        for customer in CustomerCursor(_script(first, older), page_size=3):
            got.append(customer["id"])
    assert got == ["a", "b", "c", "d", "e"]
    assert info.value.status == 200 and info.value.url == "u"


def test_a_page_that_moves_nothing_forward_is_no_progress() -> None:
    first = RawPage([_customer("a", 1), _customer("b", 2), _customer("c", 3)], total_count=10)
    same_place = RawPage([_customer("b", 2), _customer("c", 3)], total_count=10)
    with pytest.raises(XivaBadResponseError, match="made no progress"):
        list(CustomerCursor(_script(first, same_place), page_size=3))


def test_a_server_that_never_yields_anyone_new_is_stopped() -> None:
    """Every state change looks like progress, yet nobody new comes: the backstop stops it."""
    served = [0]

    def fetch(offset: int, limit: int, since: datetime | None) -> Any:
        served[0] += 1
        if offset > 0:  # the anchor is never there: step back to 0
            return RawPage([], total_count=6)
        # Offset 0: the same three customers, each time at a later instant.
        return RawPage([_customer(cid, served[0]) for cid in "abc"], total_count=6)

    cursor = CustomerCursor(fetch, page_size=3)
    with pytest.raises(XivaBadResponseError, match="made no progress"):
        list(cursor)
    # Bounded by the list's total (20 + 2 * 6 // 2 requests without anyone new), not looping.
    assert cursor.requests == 1 + 20 + 2 * 6 // 2 + 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"customers": []}, "neither a JSON array nor a DRF page"),
        ("<html>", "neither a JSON array nor a DRF page"),
        ([{"lastUpdate": "2026-01-01T00:00:00Z"}], "without a string 'id'"),
    ],
)
def test_a_page_that_is_not_a_list_of_customers_is_a_bad_response(data: Any, message: str) -> None:
    with pytest.raises(XivaBadResponseError, match=message):
        next(CustomerCursor(_script(data)))


def test_parse_customer_page_reads_both_shapes() -> None:
    a = _customer("a", 0)
    assert parse_customer_page(RawPage([a], total_count=7)) == ([a], 7, None)
    drf = {"count": 7, "next": None, "results": [a]}
    assert parse_customer_page(RawPage(drf)) == ([a], 7, False)
    assert parse_customer_page(RawPage({"count": "x", "next": "n", "results": []})) == (
        [],
        None,
        True,
    )


def test_nothing_is_fetched_before_the_first_customer_is_asked_for() -> None:
    def fetch(offset: int, limit: int, since: datetime | None) -> Any:
        raise AssertionError("fetched too early")

    cursor = CustomerCursor(fetch)
    assert cursor.requests == 0 and "requests=0" in repr(cursor)
    with pytest.raises(ValueError, match="page_size"):
        CustomerCursor(fetch, page_size=1)


@pytest.mark.parametrize("shape", ["array", "total", "drf"])
@pytest.mark.parametrize("bad", [0, 4, 11, 12, 22])
def test_a_malformed_last_update_is_yielded_in_its_place_and_skips_no_one(
    shape: str, bad: int
) -> None:
    customers = _population()
    order = _ordered(customers)

    def fetch(offset: int, limit: int, since: datetime | None) -> Any:
        # The server sorts by its real lastUpdate but renders one customer's unreadably.
        page = _server(customers, shape)(offset, limit, since)
        rows = page.data if isinstance(page, RawPage) else page
        rows = rows["results"] if isinstance(rows, dict) else rows
        for i, row in enumerate(rows):
            if row["id"] == order[bad]["id"]:
                rows[i] = {**row, "lastUpdate": "not a date"}
        return page

    cursor = CustomerCursor(fetch, page_size=4)
    ids = [c["id"] for c in cursor]
    assert sorted(ids) == sorted(c["id"] for c in customers) and len(ids) == len(set(ids))
    if shape != "array":
        assert cursor.total == len(customers)
