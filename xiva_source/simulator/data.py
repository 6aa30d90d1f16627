"""The synthetic customer population: deterministic from a seed, generated lazily per index.

Only the ``(lastUpdate, id)`` ordering index is built up front (one hash per customer), so a
100,000-customer simulator starts in about a second; each Customer and 360 view is rebuilt from a
hash of ``(seed, index)`` when asked for. Updates (``update_customers``) are kept as an overlay of
update instants per customer, from which the changed 360 numbers are derived deterministically.

The population deliberately has every quirk the contract allows: ``status`` in any case, absent
``engagedIndividual`` / ``birthDate`` / postal address / ``loyaltyTier``, numbers as JSON strings,
dates as ``YYYY-MM-DD`` or full timestamps, ``lastUpdate`` up to six years old, and batches of
customers sharing one ``lastUpdate`` (so ties straddle page boundaries).
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import UnknownCustomerError

__all__ = ["CustomerStore", "format_timestamp", "parse_timestamp", "reference_now"]

_US = 1_000_000
_HOUR_US = 3600 * _US
_DAY_US = 86400 * _US
_SIX_YEARS_S = 6 * 365 * 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_BATCHES = 12
"""Batch loads: instants shared by many customers (about 45% of them)."""

_STATUSES = (
    *("active",) * 30,
    *("Active",) * 10,
    *("ACTIVE",) * 5,
    *("inactive",) * 7,
    *("Inactive",) * 3,
    *("INACTIVE",) * 5,
    *("suspended",) * 4,
    *("Suspended",) * 2,
    *("SUSPENDED",) * 1,
)
_TIERS = ("bronze", "bronze", "bronze", "silver", "silver", "gold", "platinum")
_GIVEN = (
    "Jane", "John", "Amelia", "Noah", "Olivia", "Liam", "Emma", "Lucas", "Chloe", "Ethan",
    "Mia", "Mohammed", "Priya", "Wei", "Sofia", "Mateo", "Zoe", "Arjun", "Léa", "Félix",
)  # fmt: skip
_FAMILY = (
    "Doe", "Smith", "Tremblay", "Roy", "Gagnon", "Nguyen", "Singh", "Li", "Martin", "Brown",
    "Wilson", "Côté", "Patel", "Kim", "Garcia", "Lee", "Taylor", "Bouchard", "Chen", "Khan",
)  # fmt: skip
_CITIES = (
    "Toronto", "Montreal", "Vancouver", "Calgary", "Edmonton", "Ottawa", "Winnipeg",
    "Quebec City", "Hamilton", "Halifax", "Victoria", "Saskatoon", "Regina", "St. John's",
)  # fmt: skip


def _digest(seed: int, *parts: object) -> bytes:
    key = ":".join(str(p) for p in (seed, *parts)).encode()
    return hashlib.blake2b(key, digest_size=32).digest()


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * _US + delta.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def format_timestamp(us: int, *, offset_style: bool = False) -> str:
    """ISO 8601 UTC text of an epoch-microsecond instant.

    ``Z`` style (``2026-10-14T08:00:00Z``) or, for the customers that get it, the
    ``+00:00`` style with milliseconds; microseconds are written only when non-zero.
    """
    moment = _from_us(us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    elif offset_style:
        text += ".000"
    return text + ("+00:00" if offset_style else "Z")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 date or timestamp (``Z``, offset or naive = UTC) to an aware datetime.

    Raises:
        ValueError: the text is not ISO 8601.
    """
    # A '+' sent unencoded in a query string arrives as a space.
    moment = datetime.fromisoformat(text.strip().replace(" ", "+").replace("z", "Z"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _date_text(us: int, *, timestamp_style: bool) -> str:
    moment = _from_us(us)
    if timestamp_style:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%d")


class _Traits:
    """Per-customer presentation quirks, fixed by the customer's hash."""

    __slots__ = ("iso_dates", "offset_style", "stringly")

    def __init__(self, digest: bytes) -> None:
        self.stringly = digest[26] < 51  # ~20%: numbers as JSON strings
        self.iso_dates = digest[27] < 77  # ~30%: dates as full timestamps
        self.offset_style = digest[28] < 51  # ~20%: "+00:00" timestamps


class CustomerStore:
    """The synthetic customers of one simulator. Thread-safe.

    Args:
        count: Number of customers.
        seed: Seed of the population.
        reference_time: The "now" the data is generated against; every base ``lastUpdate`` is at
            least an hour before it.
    """

    def __init__(self, count: int, seed: int, reference_time: datetime) -> None:
        self._count = count
        self._seed = seed
        self._ref_us = _to_us(reference_time)
        self.reference_time = _from_us(self._ref_us)
        """The "now" the data was generated against (same seed and reference: same data)."""
        self._lock = threading.RLock()
        batch_rng = random.Random(_digest(seed, "batches"))
        recent = [batch_rng.randint(2, 90 * 24) for _ in range(4)]
        older = [batch_rng.randint(90 * 24, 6 * 365 * 24) for _ in range(_BATCHES - 4)]
        self._batch_us = [self._ref_us - hours * _HOUR_US for hours in recent + older]
        self._ids: list[str] = []
        self._base_us: list[int] = []
        for index in range(count):
            digest = _digest(seed, index)
            self._ids.append(str(uuid.UUID(bytes=digest[:16], version=4)))
            self._base_us.append(self._base_last_update(digest))
        self._index_of = {cid: i for i, cid in enumerate(self._ids)}
        self._updates: dict[int, list[int]] = {}
        self._patches: dict[int, dict[str, Any]] = {}
        self._update_rounds = 0
        self._order: list[tuple[int, str, int]] = []
        self.reset()

    def _base_last_update(self, digest: bytes) -> int:
        if digest[24] < 115:  # ~45% were batch-loaded and share their batch's instant
            return self._batch_us[digest[25] % _BATCHES]
        fraction = int.from_bytes(digest[16:24], "big") / 2**64
        # Squared: most customers changed recently, a long tail is years old.
        return self._ref_us - (3600 + int(fraction * fraction * _SIX_YEARS_S)) * _US

    def reset(self) -> None:
        """Forget every update: back to the generated population."""
        with self._lock:
            self._updates = {}
            self._patches = {}
            self._update_rounds = 0
            self._order = sorted(zip(self._base_us, self._ids, range(self._count), strict=True))

    def __len__(self) -> int:
        return self._count

    # -- lookups ---------------------------------------------------------------------------------

    def index(self, customer_id: str) -> int:
        """The index of a customer id.

        Raises:
            UnknownCustomerError: no such customer.
        """
        try:
            return self._index_of[customer_id]
        except KeyError as e:
            raise UnknownCustomerError(customer_id) from e

    def neighbour(self, customer_id: str) -> str:
        """Another customer's id (the next one generated): whose record a ``swapped`` fault serves.

        Raises:
            UnknownCustomerError: no such customer.
        """
        return self._ids[(self.index(customer_id) + 1) % self._count]

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._index_of

    def ordered_ids(self) -> list[str]:
        """Every id in ``(lastUpdate, id)`` order."""
        with self._lock:
            return [cid for _, cid, _ in self._order]

    def page(
        self, *, since: datetime | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of customers changed at or after ``since``, in ``(lastUpdate, id)`` order.

        Returns:
            ``(total matching, customers of the page)``.
        """
        with self._lock:
            start = 0 if since is None else bisect.bisect_left(self._order, (_to_us(since),))
            total = len(self._order) - start
            rows = self._order[start + offset : start + offset + limit]
            return total, [self._customer(index) for _, _, index in rows]

    def last_update(self, customer_id: str) -> datetime:
        """The customer's current ``lastUpdate``."""
        with self._lock:
            return _from_us(self._last_update_us(self.index(customer_id)))

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The TMF629 Customer of this id (a fresh dict).

        Raises:
            UnknownCustomerError: no such customer.
        """
        index = self.index(customer_id)
        with self._lock:
            return self._customer(index)

    def view_360(self, customer_id: str) -> dict[str, Any]:
        """The complete 360 view: ``customer``, ``financial``, ``usage``, ``services``.

        Raises:
            UnknownCustomerError: no such customer.
        """
        index = self.index(customer_id)
        with self._lock:
            updates = list(self._updates.get(index, ()))
            customer = self._customer(index)
        view: dict[str, Any] = {"customer": customer}
        view.update(self._parts(index, updates))
        for path, value in self._patches.get(index, {}).items():
            if not path.startswith("customer."):  # the customer's own were set by _customer
                _set_path(view, path, value)
        return view

    def corrupt(self, customer_id: str, patch: Mapping[str, Any]) -> None:
        """Serve malformed data for one customer until :meth:`reset` (its order stays put).

        Args:
            customer_id: The customer.
            patch: Dotted paths in the 360 view -> the value to serve, e.g.
                ``{"customer.lastUpdate": "yesterday", "financial.payment_count": "many"}``
                (``customer.*`` applies to the list and detail answers too).

        Raises:
            UnknownCustomerError: no such customer.
        """
        index = self.index(customer_id)
        with self._lock:
            self._patches.setdefault(index, {}).update(patch)

    # -- updates ---------------------------------------------------------------------------------

    def update(
        self, ids: Iterable[str] | None = None, count: int | None = None, at: datetime | None = None
    ) -> list[str]:
        """Move customers' ``lastUpdate`` to ``at`` and change their 360 data.

        Args:
            ids: Customers to update.
            count: Or: how many customers to pick (deterministically from the seed and the number
                of earlier picks).
            at: The new ``lastUpdate`` (UTC; naive means UTC); default now.

        Returns:
            The ids changed, in the order given or picked.

        Raises:
            UnknownCustomerError: an id is not a customer (nothing is changed then).
            ValueError: neither ``ids`` nor ``count`` given, or ``count`` out of range.
        """
        at_us = _to_us(at if at is not None else datetime.now(UTC))
        with self._lock:
            if ids is not None:
                indexes = [self.index(cid) for cid in ids]
            elif count is not None:
                if not 0 <= count <= self._count:
                    raise ValueError(
                        f"count={count} is outside 0..{self._count} (the number of customers); "
                        "ask for fewer customers or pass ids"
                    )
                self._update_rounds += 1
                picker = random.Random(_digest(self._seed, "update", self._update_rounds))
                indexes = picker.sample(range(self._count), count)
            else:
                raise ValueError("update_customers needs ids=[...] or count=N; neither was given")
            for index in dict.fromkeys(indexes):
                old_key = (self._last_update_us(index), self._ids[index], index)
                del self._order[bisect.bisect_left(self._order, old_key)]
                self._updates.setdefault(index, []).append(at_us)
                bisect.insort(self._order, (at_us, self._ids[index], index))
            return [self._ids[index] for index in indexes]

    # -- generation ------------------------------------------------------------------------------

    def _last_update_us(self, index: int) -> int:
        updates = self._updates.get(index)
        return updates[-1] if updates else self._base_us[index]

    def _customer(self, index: int) -> dict[str, Any]:
        digest = _digest(self._seed, index)
        traits = _Traits(digest)
        rng = random.Random(digest + b"customer")
        base_us = self._base_us[index]
        created_us = base_us - rng.randint(0, 4 * 365 * 86400) * _US
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        customer: dict[str, Any] = {
            "id": self._ids[index],
            "href": f"/customerManagement/v4/customer/{self._ids[index]}",
            "@type": "Customer",
            "name": f"{given} {family}",
            "status": rng.choice(_STATUSES),
            "lastUpdate": format_timestamp(
                self._last_update_us(index), offset_style=traits.offset_style
            ),
            "creationDate": format_timestamp(created_us, offset_style=traits.offset_style),
        }
        if rng.random() >= 0.08:
            individual: dict[str, Any] = {"givenName": given, "familyName": family}
            if rng.random() >= 0.10:
                age_days = rng.randint(18 * 365, 85 * 365)
                born_us = (self._ref_us // _DAY_US - age_days) * _DAY_US
                individual["birthDate"] = _date_text(born_us, timestamp_style=traits.iso_dates)
            customer["engagedIndividual"] = individual
        media: list[dict[str, Any]] = []
        if rng.random() >= 0.03:
            email = f"{given}.{family}{index}@example.test".lower()
            media.append({"mediumType": "email", "characteristic": {"emailAddress": email}})
        if rng.random() >= 0.12:
            address = {"city": rng.choice(_CITIES), "country": "CA"}
            media.append({"mediumType": "postalAddress", "characteristic": address})
        customer["contactMedium"] = media
        characteristics = [
            {"name": "preferredLanguage", "valueType": "string", "value": rng.choice(("en", "fr"))}
        ]
        if rng.random() >= 0.15:
            tier = {"name": "loyaltyTier", "valueType": "string", "value": rng.choice(_TIERS)}
            characteristics.insert(rng.randint(0, 1), tier)
        customer["characteristic"] = characteristics
        for path, value in self._patches.get(index, {}).items():
            if path.startswith("customer."):
                _set_path(customer, path.removeprefix("customer."), value)
        return customer

    def _parts(self, index: int, updates: list[int]) -> dict[str, dict[str, Any]]:
        digest = _digest(self._seed, index)
        traits = _Traits(digest)
        rng = random.Random(digest + b"360")
        base_us = self._base_us[index]
        payment_count = 0 if rng.random() < 0.04 else rng.randint(1, 120)
        average = rng.uniform(20.0, 180.0)
        total_payments = payment_count * average
        total_bills = total_payments * rng.uniform(1.0, 1.08) + (
            rng.uniform(10.0, 200.0) if payment_count == 0 else 0.0
        )
        last_payment_us = (
            None if payment_count == 0 else base_us - rng.randint(0, 200 * 86400) * _US
        )
        month_spend = rng.uniform(0.0, 150.0)
        total_spend = month_spend + rng.uniform(0.0, 5000.0)
        records = rng.randint(0, 5000)
        total_services = rng.randint(1, 6)
        active_services = rng.randint(0, total_services)
        for round_number, at_us in enumerate(updates, start=1):
            step = random.Random(digest + b"update" + round_number.to_bytes(4, "big"))
            payments = step.randint(1, 3)
            amount = step.uniform(20.0, 150.0) * payments
            payment_count += payments
            total_bills += amount
            total_payments += amount * step.uniform(0.9, 1.0)
            last_payment_us = at_us
            month_spend = step.uniform(0.0, 150.0)
            total_spend += month_spend
            records += step.randint(1, 50)
        number = _stringly if traits.stringly else _plain
        last_payment = (
            None
            if last_payment_us is None
            else _date_text(last_payment_us, timestamp_style=traits.iso_dates)
        )
        return {
            "financial": {
                "currency": "CAD",
                "total_bills": number(round(total_bills, 2)),
                "total_payments": number(round(total_payments, 2)),
                "payment_count": number(payment_count),
                "last_payment_date": last_payment,
                "outstanding_amount": number(round(max(total_bills - total_payments, 0.0), 2)),
            },
            "usage": {
                "usage_summary": {
                    "current_month_spend": number(round(month_spend, 2)),
                    "total_spend": number(round(total_spend, 2)),
                    "total_records": number(records),
                }
            },
            "services": {
                "active_services": number(active_services),
                "total_services": number(total_services),
            },
        }


def _plain(value: float | int) -> float | int:
    return value


def _stringly(value: float | int) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def reference_now() -> datetime:
    """The default reference time: the start of the current UTC hour."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``doc[a][b]...`` for the dotted ``path`` ``a.b...`` (intermediate objects created)."""
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[last] = value
