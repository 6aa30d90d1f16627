"""Paging Xiva's customer list: a cursor object that reads every customer exactly once.

Xiva pages by offset and its customer set changes while it is read. :class:`CustomerCursor` pages
by the anchored cursor ``(lastUpdate, position among customers sharing that lastUpdate)``: each
page is requested with ``lastUpdate.gte`` = the last ``lastUpdate`` seen and an offset that re-reads
the last customer seen (the anchor). When the anchor is not where it should be (customers changed
between pages), the cursor steps back until it is, so nothing is skipped however many customers
share one ``lastUpdate``; customers read twice are yielded once. A server that repeats a page, does
not sort, or makes no progress raises :class:`XivaBadResponseError` instead of looping.

The cursor knows nothing of HTTP: it calls a ``fetch_page(offset, limit, since)`` callable (in the
style of python-gitlab's ``GitlabList`` or dlt's paginators), so it is tested on plain lists of
pages. The client's :meth:`~xiva_source.xiva_api.client.XivaClient.iter_customers` gives it one
that sends ``GET customerManagement/v4/customer/?limit=&offset=&ordering=lastUpdate,id
&lastUpdate.gte=``.

Example:
    >>> pages = [[{"id": "a", "lastUpdate": "2026-01-01T00:00:00Z"}]]
    >>> [c["id"] for c in CustomerCursor(lambda offset, limit, since: pages[0])]
    ['a']
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xiva_source.timeutil import as_utc, parse_iso
from xiva_source.xiva_api.errors import XivaBadResponseError
from xiva_source.xiva_api.logs import logger

__all__ = ["PAGE_SIZE", "CustomerCursor", "FetchPage", "RawPage", "parse_customer_page"]

PAGE_SIZE = 50
"""Customers per list page (Xiva's maximum)."""

_BODY_LIMIT = 4000  # characters of a body handed to an error (which keeps a short excerpt)


@dataclass(frozen=True)
class RawPage:
    """One answer of the customer list, as the cursor needs it.

    Attributes:
        data: The decoded JSON: a bare array of customers, or a DRF page
            ``{"count", "next", "results"}``.
        total_count: The ``X-Total-Count`` header (the bare-array shape's total), if any.
        status: The HTTP status, for error messages.
        url: The URL requested, for error messages.
        text: The raw body, for error excerpts (default: ``data`` as JSON).
    """

    data: Any
    total_count: int | None = None
    status: int | None = None
    url: str | None = None
    text: str | None = None

    def body(self) -> str:
        """The body to quote in an error (cut; the error keeps a short redacted excerpt)."""
        text = self.text if self.text is not None else json.dumps(self.data, default=str)
        return text[:_BODY_LIMIT]


FetchPage = Callable[[int, int, datetime | None], "RawPage | Any"]
"""``fetch_page(offset, limit, since)``: one request of the list ordered by ``lastUpdate,id``,
filtered to ``lastUpdate >= since`` (``None``: everyone), ``limit`` customers from ``offset``.
Returns a :class:`RawPage`, or just the decoded JSON (a list or a DRF dict)."""


def parse_customer_page(
    page: RawPage,
) -> tuple[list[dict[str, Any]], int | None, bool | None]:
    """``(customers, total or None, has_next or None)`` from either list shape.

    Args:
        page: One answer of the customer list.

    Returns:
        The customers, the total count (DRF ``count`` or ``X-Total-Count``) and whether there
        is a next page (DRF ``next``; ``None`` for a bare array).

    An entry whose ``lastUpdate`` is not an ISO timestamp is returned as it is: it is one
    malformed customer (the pull skips, reports and retries it), not a broken list.

    Raises:
        XivaBadResponseError: The answer is neither shape, or an entry is not an object with a
            string ``id``.
    """
    data = page.data
    has_next: bool | None = None
    if isinstance(data, list):
        customers, total = data, page.total_count
    elif isinstance(data, dict) and isinstance(data.get("results"), list):
        customers = data["results"]
        count = data.get("count")
        total = count if isinstance(count, int) else None
        has_next = data.get("next") is not None
    else:
        raise XivaBadResponseError(
            "Xiva's customer list is neither a JSON array nor a DRF page "
            "({count, next, results}); check XIVA_API_BASE_URL.",
            status=page.status,
            body=page.body(),
            url=page.url,
        )
    for item in customers:
        if not (isinstance(item, dict) and isinstance(item.get("id"), str)):
            raise XivaBadResponseError(
                "Xiva's customer list holds an entry without a string 'id', which paging "
                "needs; report this Xiva deployment's format.",
                status=page.status,
                body=str(item)[:400],
                url=page.url,
            )
    return customers, total, has_next


class CustomerCursor(Iterator[dict[str, Any]]):
    """Every customer (changed at or after ``updated_since``), each exactly once.

    An iterator: each ``next()`` returns a customer, fetching a page when the current one is
    used up. Customers come in ``(lastUpdate, id)`` order.

    Args:
        fetch_page: ``fetch_page(offset, limit, since)`` -> one page (see :data:`FetchPage`).
        updated_since: Only customers whose ``lastUpdate`` is at or after it; a naive datetime
            is taken as UTC. ``None`` lists everyone.
        page_size: Customers per page (the ``limit`` asked for).

    Attributes:
        requests: Pages requested so far (step-backs included).
        total: How many customers the list held at its first page (``X-Total-Count`` or the DRF
            ``count``), for progress and ETA; ``None`` before the first page or when Xiva
            gives no count.

    Raises:
        XivaBadResponseError: (from ``next()``) a page is not a list of customers, or the
            server repeats a page, makes no progress or ignores the ordering (it does not
            honour ``offset``, ``ordering`` or ``lastUpdate.gte``); customers already returned
            stay valid.
        XivaError: (from ``next()``) whatever ``fetch_page`` raises.
    """

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        updated_since: datetime | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if page_size < 2:
            raise ValueError(f"page_size must be >= 2 (one anchor + one new), got {page_size}")
        self.page_size = page_size
        self.requests = 0
        self.total: int | None = None
        self._fetch = fetch_page
        self._seen: set[str] = set()
        self._cursor = as_utc(updated_since) if updated_since is not None else None
        self._at_cursor = 0  # customers at `_cursor` before the end of the last page, list order
        self._offset = 0
        self._previous_ids: list[str] | None = None
        self._step_backs = 0  # consecutive re-reads looking for the anchor
        self._stalled = 0  # requests since the last new customer
        self._buffer: deque[dict[str, Any]] = deque()
        self._pending: XivaBadResponseError | None = None  # raised once the buffer is drained
        self._done = False

    def __repr__(self) -> str:
        since = self._cursor.isoformat() if self._cursor is not None else None
        return (
            f"CustomerCursor(since={since!r}, offset={self._offset}, seen={len(self._seen)}, "
            f"requests={self.requests}, done={self._done})"
        )

    def __iter__(self) -> CustomerCursor:
        return self

    def __next__(self) -> dict[str, Any]:
        while not self._buffer:
            if self._pending is not None:
                error, self._pending = self._pending, None
                raise error
            if self._done:
                raise StopIteration
            try:
                self._buffer.extend(self._advance())
            except BaseException:
                self._done = True
                raise
        return self._buffer.popleft()

    def _advance(self) -> list[dict[str, Any]]:
        """Request one page; return its customers not returned before (none on a step-back)."""
        raw = self._fetch(self._offset, self.page_size, self._cursor)
        page = raw if isinstance(raw, RawPage) else RawPage(raw)
        self.requests += 1
        customers, total, has_next = parse_customer_page(page)
        if self.requests == 1:
            self.total = (
                total  # later pages count from a later cursor: only the first is the list's
            )
        ids = [c["id"] for c in customers]
        if self._previous_ids is not None and ids and ids == self._previous_ids:
            raise _paging_error(page, "returned the same page twice")
        self._previous_ids = ids
        self._stalled += 1
        # However the set shifts, a sane server yields a new customer within a full pass of the
        # remaining list (plus a few anchor searches): beyond that, it is not paging sanely.
        expected = total if total is not None else 10_000
        if self._stalled > 20 + 2 * expected // (self.page_size - 1):
            raise _paging_error(page, "made no progress")
        updated = _list_times(customers, self._cursor)
        if any(b < a for a, b in itertools.pairwise(updated)):
            raise _paging_error(page, "is not sorted by lastUpdate")

        offset, cursor = self._offset, self._cursor
        if offset > 0 and not (customers and updated[0] == cursor and ids[0] in self._seen):
            # The customer re-read as an anchor moved (customers at the cursor changed since the
            # last page): step back so none of them can be skipped.
            self._offset = max(0, offset - self.page_size * 2**self._step_backs)
            self._step_backs += 1
            logger.info(
                "Xiva customer list shifted between pages; re-reading from %d", self._offset
            )
            return []

        self._step_backs = 0
        new: list[dict[str, Any]] = []
        for customer, cid in zip(customers, ids, strict=True):
            if cid not in self._seen:
                self._seen.add(cid)
                new.append(customer)
        if new:
            self._stalled = 0

        final = (
            not customers
            or has_next is False
            or (total is not None and offset + len(customers) >= total)
            or (total is None and has_next is None and len(customers) < self.page_size)
        )
        if final:
            self._done = True
            return new
        before = (cursor, self._at_cursor)
        last = updated[-1]
        if cursor is not None and last < cursor:
            # Raised after this page's customers: those already read stay valid.
            self._fail_after(page, "returned customers older than lastUpdate.gte")
            return new
        if cursor is not None and last == cursor:
            self._at_cursor = offset + sum(1 for u in updated if u == cursor)
        else:
            self._cursor = last
            self._at_cursor = sum(1 for u in updated if u == last)
        if not new and (self._cursor, self._at_cursor) == before:
            self._fail_after(page, "made no progress")
            return new
        self._offset = self._at_cursor - 1  # re-read the last customer seen: the next anchor
        return new

    def _fail_after(self, page: RawPage, what: str) -> None:
        self._pending = _paging_error(page, what)
        self._done = True


def _list_times(customers: list[dict[str, Any]], cursor: datetime | None) -> list[datetime]:
    """Each entry's ``lastUpdate``; a malformed one takes its predecessor's (the cursor's first).

    The server sorted the entry by its real ``lastUpdate``, so the entry keeps its place: the
    stand-in is never later than the truth, which at worst makes the cursor re-read a customer
    (yielded once), never skip one.
    """
    times: list[datetime | None] = []
    for customer in customers:
        try:
            times.append(parse_iso(customer.get("lastUpdate")))
        except (TypeError, ValueError):
            times.append(None)
    known = [t for t in times if t is not None]
    previous = (
        cursor if cursor is not None else (known[0] if known else datetime.min.replace(tzinfo=UTC))
    )
    result: list[datetime] = []
    for t in times:
        previous = t if t is not None else previous
        result.append(previous)
    return result


def _paging_error(page: RawPage, what: str) -> XivaBadResponseError:
    return XivaBadResponseError(
        f"Xiva's customer list {what}: this deployment does not honour offset, "
        "ordering=lastUpdate,id or lastUpdate.gte, so paging cannot be trusted and stopped "
        "instead of looping. Report it to the Xiva administrators; use the DWH source "
        "meanwhile.",
        status=page.status,
        url=page.url,
    )
