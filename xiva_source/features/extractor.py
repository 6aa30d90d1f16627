"""Features from a Xiva 360 view: the standard features of the contract, and YOUR custom ones.

To add a feature, edit this file (``xiva_source/features/extractor.py``): write a function
that takes the 360 view (and the extraction time) and returns a value, and decorate it with
:func:`custom_feature`. It then appears in :func:`feature_schema` (and so in the Feast feature
view built from it), in :func:`features_from_360` and in :func:`extract_customer_features`. See
the ``outstanding_amount`` example at the bottom and docs/xiva-client.md.

Rules every feature follows:

- a source field that is absent (or JSON ``null``) gives ``None``, never a made-up default;
- numbers sent as JSON strings (``"1234.56"``) are parsed;
- a value that cannot be parsed gives ``None`` and a WARNING naming the customer and the field,
  so one bad record never fails a batch; the same holds for a custom feature that raises;
- a value must stay true until the customer changes: store the fact (a date, type
  ``"timestamp"``), never a count relative to the extraction time, which would freeze. Time-relative
  features are derived when read (:mod:`xiva_source.features.derived`, docs/feature-repo.md);
- a row belongs to the customer asked for: a 360 view whose ``customer.id`` names another
  customer answers someone else's record (:func:`wrong_customer`) and is never a row, under
  either id (the pull counts it malformed and retries it; live refresh refuses it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, get_args

from xiva_source.features.catalogue import (
    DERIVED_FEATURES,
    DWH_ONLY_FEATURE_TYPES,
    ENTITY,
    EVENT_TIMESTAMP,
    STANDARD_FEATURES,
    FeatureType,
)
from xiva_source.timeutil import as_utc, parse_iso, utc_now

if TYPE_CHECKING:
    from xiva_source.settings import Settings
    from xiva_source.xiva_api.client import XivaClient

__all__ = [
    "STANDARD_FEATURES",
    "CustomFeature",
    "FeatureType",
    "custom_feature",
    "custom_features",
    "extract_customer_features",
    "feature_schema",
    "features_from_360",
    "remove_custom_feature",
    "wrong_customer",
]

logger = logging.getLogger("xiva_source.features.extractor")

# STANDARD_FEATURES and FeatureType are the catalogue's (re-exported here for existing callers).
# A custom feature may not shadow a standard or DWH-only feature, nor a row's key columns.
_RESERVED = frozenset(
    {ENTITY, EVENT_TIMESTAMP, *STANDARD_FEATURES, *DERIVED_FEATURES, *DWH_ONLY_FEATURE_TYPES}
)
_MISSING = object()


class _Unparsable(ValueError):
    """A source value is present but cannot be read as the feature's type."""


# -- custom features: the registry --------------------------------------------------------------

CustomFeatureFunc = Callable[[Mapping[str, Any], datetime], Any]


@dataclass(frozen=True)
class CustomFeature:
    """A registered custom feature.

    Attributes:
        name: Feature name (a valid Feast feature name; not a standard one).
        dtype: ``"string"``, ``"float"``, ``"int"`` or ``"timestamp"`` (a date or an ISO
            timestamp; UTC); the function's result is converted to it.
        func: ``func(view, now)`` -> the raw value (``None`` when the source field is absent).
    """

    name: str
    dtype: FeatureType
    func: CustomFeatureFunc


_CUSTOM_FEATURES: dict[str, CustomFeature] = {}


def custom_feature(
    name: str, dtype: FeatureType
) -> Callable[[CustomFeatureFunc], CustomFeatureFunc]:
    """Register a custom feature computed from the 360 view.

    Args:
        name: The feature's name; must be a Python identifier and not a standard feature.
        dtype: ``"string"``, ``"float"``, ``"int"`` or ``"timestamp"``. The returned value is
            converted (numeric strings and ISO dates parsed); ``None`` stays ``None``. Return a
            fact that stays true (a date), not a count relative to ``now``: that would freeze.

    Returns:
        A decorator registering ``func(view, now)`` and returning it unchanged.

    Raises:
        ValueError: Bad name or type, or the name is taken.

    Example:
        >>> @custom_feature("active_services", "int")
        ... def active_services(view, now):
        ...     return (view.get("services") or {}).get("active_services")
    """
    if dtype not in get_args(FeatureType):
        raise ValueError(
            f"custom feature {name!r}: dtype {dtype!r} is not one of "
            f"{', '.join(get_args(FeatureType))}; pick the matching Feast type."
        )
    if not name.isidentifier():
        raise ValueError(
            f"custom feature name {name!r} is not an identifier; use letters, digits and '_'."
        )
    if name in _RESERVED:
        raise ValueError(
            f"custom feature name {name!r} is a standard feature, a derived feature, a DWH-only "
            "feature or a reserved column; choose another name."
        )

    def register(func: CustomFeatureFunc) -> CustomFeatureFunc:
        existing = _CUSTOM_FEATURES.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(
                f"custom feature {name!r} is already defined (by {existing.func.__qualname__}); "
                "rename one of them or remove_custom_feature() first."
            )
        _CUSTOM_FEATURES[name] = CustomFeature(name, dtype, func)
        return func

    return register


def remove_custom_feature(name: str) -> None:
    """Unregister a custom feature (for tests and interactive sessions); unknown names are fine."""
    _CUSTOM_FEATURES.pop(name, None)


def custom_features() -> list[CustomFeature]:
    """The registered custom features, in registration order."""
    return list(_CUSTOM_FEATURES.values())


def feature_schema() -> dict[str, FeatureType]:
    """Every Xiva feature (standard, then custom) and its Feast type name, in order.

    ``customer_id`` (the entity key) and ``event_timestamp`` are columns of every row but not
    features, so they are not listed; neither are the DWH-only features (Xiva does not serve them).

    Returns:
        ``{feature name: "string" | "float" | "int"}``.
    """
    schema: dict[str, FeatureType] = dict(STANDARD_FEATURES)
    schema.update({f.name: f.dtype for f in _CUSTOM_FEATURES.values()})
    return schema


# -- extraction ----------------------------------------------------------------------------------


def extract_customer_features(
    customer_id: str,
    client: XivaClient | None = None,
    now: datetime | None = None,
    *,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Fetch one customer's 360 view from Xiva and compute its features.

    Args:
        customer_id: The Xiva customer id.
        client: The client to use; ``None`` creates one (and closes it).
        now: The time of extraction (default: now, UTC).
        settings: The settings a client created here uses (default: loaded from the
            environment and ``.env``); ignored when ``client`` is given.

    Returns:
        ``customer_id``, every feature of :func:`feature_schema`, and ``event_timestamp``.

    Raises:
        XivaError: The 360 view could not be fetched (e.g. ``XivaNotFoundError``).
        ConfigurationError: No client was given and a setting is invalid.
    """
    if client is None:
        from xiva_source.xiva_api.client import XivaClient

        with XivaClient(settings=settings) as own:
            view = own.get_customer_360(customer_id)
    else:
        view = client.get_customer_360(customer_id)
    swapped = wrong_customer(view, customer_id)
    if swapped is not None:
        from xiva_source.xiva_api.errors import XivaBadResponseError

        raise XivaBadResponseError(
            f"the 360 view of customer {customer_id}: {swapped}",
            fix="Nothing was written. Try again; if it persists, report it to the Xiva team "
            "(a gateway cache or routing fault mixing customers' answers).",
        )
    row = features_from_360(view, now=now)
    row[ENTITY] = customer_id
    return row


def wrong_customer(view: Mapping[str, Any], customer_id: str) -> str | None:
    """Why ``view`` is not ``customer_id``'s 360 view, or ``None`` when it is.

    A view whose ``customer.id`` names another customer answers someone else's record (a
    gateway cache or routing fault mixing two requests): its values are not the asked
    customer's, and writing them under the id they name would be a write nobody asked for.
    A view without an id is taken to be the asked customer's.

    Args:
        view: A 360 view as served by Xiva.
        customer_id: The customer it was asked for.

    Returns:
        The problem in words (names both ids), or ``None``.
    """
    served = _mapping(view.get("customer")).get("id")
    if served is None or str(served) == str(customer_id):
        return None
    return (
        f"customer.id is {_short(served)}, not the customer asked for ({customer_id}): "
        "Xiva answered another customer's record"
    )


def features_from_360(
    view: Mapping[str, Any], now: datetime | None = None, *, problems: list[str] | None = None
) -> dict[str, Any]:
    """Compute the features of one 360 view (pure: no I/O; the bulk path of the offline store).

    Args:
        view: A 360 view as served by Xiva (``customer``, ``financial``, ``usage``, ...).
        now: The time of extraction, handed to custom features (default: now, UTC; a naive
            datetime is taken as UTC). The standard features do not depend on it.
        problems: When given, one entry per field present but unreadable (``"<feature>: <why>"``)
            is appended: the pull treats such a record as malformed (skipped and retried).

    Returns:
        ``{"customer_id": ..., <feature>: value or None, ..., "event_timestamp": datetime}``,
        features in :func:`feature_schema` order; ``event_timestamp`` is ``customer.lastUpdate``
        as a timezone-aware UTC datetime (``None`` if absent or unparsable). The date facts
        (``last_payment_date``, ``birth_date``) are 00:00 UTC of their date.
    """
    moment = utc_now() if now is None else as_utc(now)
    customer = _mapping(view.get("customer"))
    financial = _mapping(view.get("financial"))
    cid = customer.get("id")
    who = str(cid) if cid is not None else "<no id>"
    # A caller collecting problems (the pull) reports them in its run's line: log at INFO then.
    reader = _Reader(who, level=logging.INFO if problems is not None else logging.WARNING)

    row: dict[str, Any] = {ENTITY: str(cid) if cid is not None else None}
    status = reader.read("customer_status", customer.get("status", _MISSING), _to_str)
    row["customer_status"] = status.lower() if isinstance(status, str) else None
    row["total_revenue"] = reader.read(
        "total_revenue", financial.get("total_bills", _MISSING), _to_float
    )
    row["transaction_count"] = reader.read(
        "transaction_count", financial.get("payment_count", _MISSING), _to_int
    )
    row["last_payment_date"] = reader.read(
        "last_payment_date", financial.get("last_payment_date", _MISSING), _to_date
    )
    row["customer_tier"] = reader.read("customer_tier", _loyalty_tier(customer), _to_str)
    row["city"] = reader.read("city", _postal_city(customer), _to_str)
    birth = _mapping(customer.get("engagedIndividual")).get("birthDate", _MISSING)
    row["birth_date"] = reader.read("birth_date", birth, _to_date)

    for feature in _CUSTOM_FEATURES.values():
        try:
            raw = feature.func(view, moment)
        except Exception as e:  # a user's feature must not fail the batch
            logger.warning(
                "Customer %s: custom feature %r raised %s: %s; feature set to null",
                who,
                feature.name,
                type(e).__name__,
                str(e)[:200],
            )
            row[feature.name] = None
            continue
        row[feature.name] = reader.read(feature.name, raw, _CONVERTERS[feature.dtype])

    row[EVENT_TIMESTAMP] = reader.read(
        EVENT_TIMESTAMP, customer.get("lastUpdate", _MISSING), _to_timestamp
    )
    if problems is not None:
        problems.extend(reader.problems)
    return row


class _Reader:
    """Applies a converter, turning absence into ``None`` and bad values into ``None`` + warning."""

    def __init__(self, customer: str, *, level: int = logging.WARNING) -> None:
        self.customer = customer
        self.level = level
        self.problems: list[str] = []  # "<feature>: <why>" per unreadable field

    def read(self, feature: str, raw: Any, convert: Callable[[Any], Any]) -> Any:
        if raw is _MISSING or raw is None:
            return None
        try:
            return convert(raw)
        except (_Unparsable, ValueError, TypeError, OverflowError) as e:
            self.problems.append(f"{feature}: cannot read {_short(raw)} ({e})")
            logger.log(
                self.level,
                "Customer %s: cannot read %s from %r (%s); feature set to null",
                self.customer,
                feature,
                _short(raw),
                e,
            )
            return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _loyalty_tier(customer: Mapping[str, Any]) -> Any:
    for item in customer.get("characteristic") or ():
        if isinstance(item, Mapping) and item.get("name") == "loyaltyTier":
            return item.get("value", _MISSING)
    return _MISSING


def _postal_city(customer: Mapping[str, Any]) -> Any:
    for medium in customer.get("contactMedium") or ():
        if isinstance(medium, Mapping) and medium.get("mediumType") == "postalAddress":
            return _mapping(medium.get("characteristic")).get("city", _MISSING)
    return _MISSING


# -- converters ----------------------------------------------------------------------------------


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text:
            return text
        raise _Unparsable("empty string")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unparsable(f"expected text, got {type(value).__name__}")
    return str(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Unparsable("a boolean is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip().replace(",", ""))
    else:
        raise _Unparsable(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _Unparsable("not a finite number")
    return number


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    number = _to_float(value)
    if not number.is_integer():
        raise _Unparsable("not a whole number")
    return int(number)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _to_str,
    "float": _to_float,
    "int": _to_int,
    "timestamp": lambda v: _to_timestamp(v) if isinstance(v, str) else _aware(v),
}


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise _Unparsable(f"expected a date or timestamp, got {type(value).__name__}")


def _to_moment(value: Any) -> date | datetime:
    """A ``YYYY-MM-DD`` date, or an ISO 8601 timestamp as an aware UTC datetime."""
    if not isinstance(value, str):
        raise _Unparsable(f"expected an ISO date, got {type(value).__name__}")
    text = value.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return parse_iso(text.replace("z", "Z"))


def _to_timestamp(value: Any) -> datetime:
    moment = _to_moment(value)
    if isinstance(moment, datetime):
        return moment
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _to_date(value: Any) -> datetime:
    """A date fact: 00:00 UTC of the date (a full timestamp is reduced to its UTC date)."""
    moment = _to_moment(value)
    day = moment.date() if isinstance(moment, datetime) else moment
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# ================================================================================================
# CUSTOM FEATURES: edit below this line.
#
# Each function gets the 360 view (a dict: "customer", "financial", "usage", "services") and the
# extraction time (UTC), and returns the raw value, or None when the source field is absent.
# The value is converted to the declared type; a function that raises yields None and a warning.
# After adding a feature, run `feast apply` so the feature view gains it.
# ================================================================================================


@custom_feature("outstanding_amount", "float")
def outstanding_amount(view: Mapping[str, Any], now: datetime) -> Any:
    """Amount billed but not yet paid (``financial.outstanding_amount``), in the bill currency."""
    return _mapping(view.get("financial")).get("outstanding_amount")
