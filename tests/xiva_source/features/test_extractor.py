"""The feature extractor: every standard feature on the simulator's population (with its quirks),
absent and unparsable values, and custom features.

Pure logic: the population is the simulator's data, generated in-process (no server is started).
Fetching views through the client is in ``test_extract_from_xiva.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from xiva_source.features.catalogue import DWH_ONLY_FEATURE_TYPES
from xiva_source.features.extractor import (
    STANDARD_FEATURES,
    custom_feature,
    feature_schema,
    features_from_360,
    remove_custom_feature,
)
from xiva_source.simulator import SimulatorConfig, XivaSimulator

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PY_TYPES = {"string": str, "float": float, "int": int, "timestamp": datetime}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.fixture(scope="module")
def population() -> list[dict[str, Any]]:
    """The 360 views of the test simulator's population (same config), never served over HTTP."""
    sim = XivaSimulator(SimulatorConfig(customers=2000, seed=7))
    return [sim.view_360(cid) for cid in sim.customer_ids()]


@pytest.fixture
def views(population: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return population


def _find(views: list[dict[str, Any]], pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    found = next((v for v in views if pred(v)), None)
    assert found is not None, "the simulated population has no customer with this quirk"
    return found


def _fin(view: dict[str, Any]) -> dict[str, Any]:
    return view["financial"]


def _person(view: dict[str, Any]) -> dict[str, Any] | None:
    return view["customer"].get("engagedIndividual")


def test_schema_lists_standard_then_custom_features_in_order() -> None:
    schema = feature_schema()
    assert list(schema)[:7] == [
        "customer_status",
        "total_revenue",
        "transaction_count",
        "last_payment_date",
        "customer_tier",
        "city",
        "birth_date",
    ]
    assert schema["total_revenue"] == "float" and schema["birth_date"] == "timestamp"
    assert "age" not in schema and "last_purchase_days_ago" not in schema  # derived when read
    assert schema["outstanding_amount"] == "float"  # the shipped custom example
    assert dict(STANDARD_FEATURES).items() <= schema.items()


def test_whole_population_extracts_cleanly_with_schema_types(
    views: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    schema = feature_schema()
    with caplog.at_level(logging.WARNING):
        rows = [features_from_360(v, now=NOW) for v in views]
    assert caplog.records == []  # the simulator's quirks are all parseable
    for row, view in zip(rows, views, strict=True):
        assert list(row) == ["customer_id", *schema, "event_timestamp"]
        assert row["customer_id"] == view["customer"]["id"]
        for name, dtype in schema.items():
            assert row[name] is None or type(row[name]) is PY_TYPES[dtype], (name, row[name])
        assert row["event_timestamp"].tzinfo is not None
        assert row["event_timestamp"].utcoffset().total_seconds() == 0
    assert {r["customer_status"] for r in rows} <= {"active", "inactive", "suspended", "prospect"}


def test_stringly_numbers_are_parsed(views: list[dict[str, Any]]) -> None:
    view = _find(views, lambda v: isinstance(_fin(v)["total_bills"], str))
    row = features_from_360(view, now=NOW)
    assert row["total_revenue"] == float(_fin(view)["total_bills"])
    assert row["transaction_count"] == int(_fin(view)["payment_count"])
    assert row["outstanding_amount"] == float(_fin(view)["outstanding_amount"])
    plain = _find(views, lambda v: isinstance(_fin(v)["total_bills"], float))
    assert features_from_360(plain, now=NOW)["total_revenue"] == _fin(plain)["total_bills"]


def test_last_payment_date_is_a_date_fact_whatever_the_extraction_time(
    views: list[dict[str, Any]],
) -> None:
    dated = _find(views, lambda v: len(_fin(v)["last_payment_date"] or "") == 10)
    paid = date.fromisoformat(_fin(dated)["last_payment_date"])
    assert features_from_360(dated, now=NOW)["last_payment_date"] == _midnight(paid)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert features_from_360(dated, now=later)["last_payment_date"] == _midnight(paid)

    stamped = _find(views, lambda v: len(_fin(v)["last_payment_date"] or "") > 10)
    at = datetime.fromisoformat(_fin(stamped)["last_payment_date"].replace("Z", "+00:00"))
    row = features_from_360(stamped, now=NOW)
    assert row["last_payment_date"] == _midnight(at.astimezone(UTC).date())  # its UTC date

    never = _find(views, lambda v: _fin(v)["last_payment_date"] is None)
    row = features_from_360(never, now=NOW)
    assert row["last_payment_date"] is None  # absent, not a made-up date
    assert row["transaction_count"] == 0  # a real zero stays zero


def test_customer_fields_and_their_absence(views: list[dict[str, Any]]) -> None:
    def tier(v: dict[str, Any]) -> str | None:
        found = [c["value"] for c in v["customer"]["characteristic"] if c["name"] == "loyaltyTier"]
        return found[0] if found else None

    def city(v: dict[str, Any]) -> str | None:
        media = v["customer"]["contactMedium"]
        found = [m["characteristic"]["city"] for m in media if m["mediumType"] == "postalAddress"]
        return found[0] if found else None

    with_tier = _find(views, lambda v: tier(v) is not None)
    assert features_from_360(with_tier, now=NOW)["customer_tier"] == tier(with_tier)
    assert features_from_360(_find(views, lambda v: tier(v) is None))["customer_tier"] is None

    with_city = _find(views, lambda v: city(v) is not None)
    assert features_from_360(with_city, now=NOW)["city"] == city(with_city)
    assert features_from_360(_find(views, lambda v: city(v) is None))["city"] is None

    shouty = _find(views, lambda v: v["customer"]["status"] != v["customer"]["status"].lower())
    row = features_from_360(shouty, now=NOW)
    assert row["customer_status"] == shouty["customer"]["status"].lower()

    offset_style = _find(views, lambda v: v["customer"]["lastUpdate"].endswith("+00:00"))
    stamp = offset_style["customer"]["lastUpdate"]
    assert features_from_360(offset_style)["event_timestamp"] == datetime.fromisoformat(stamp)


def test_birth_date_fact_and_absent_birth(views: list[dict[str, Any]]) -> None:
    no_person = _find(views, lambda v: _person(v) is None)
    assert features_from_360(no_person, now=NOW)["birth_date"] is None
    no_birth = _find(views, lambda v: "birthDate" not in (_person(v) or {"birthDate": 1}))
    assert features_from_360(no_birth, now=NOW)["birth_date"] is None
    stamped = _find(views, lambda v: len((_person(v) or {}).get("birthDate", "")) > 10)
    birth = (_person(stamped) or {})["birthDate"]
    born = datetime.fromisoformat(birth.replace("Z", "+00:00")).astimezone(UTC).date()
    assert features_from_360(stamped, now=NOW)["birth_date"] == _midnight(born)

    view = {"customer": {"id": "c1", "engagedIndividual": {"birthDate": "2000-02-29"}}}
    assert features_from_360(view, now=NOW)["birth_date"] == datetime(2000, 2, 29, tzinfo=UTC)


def test_an_empty_view_gives_nulls_not_defaults() -> None:
    row = features_from_360({}, now=NOW)
    assert row == dict.fromkeys(["customer_id", *feature_schema(), "event_timestamp"])


def test_unparsable_values_give_null_and_a_warning_naming_customer_and_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = {
        "customer": {"id": "cust-9", "status": "Active", "lastUpdate": "yesterday"},
        "financial": {
            "total_bills": "12,5 EUR",
            "payment_count": "7.5",
            "last_payment_date": "2026-13-45",
            "outstanding_amount": {"amount": 3},
        },
    }
    with caplog.at_level(logging.WARNING, logger="xiva_source.features.extractor"):
        row = features_from_360(view, now=NOW)
    assert row["customer_status"] == "active"  # the rest of the row survives
    for name in ("total_revenue", "transaction_count", "last_payment_date"):
        assert row[name] is None
    assert row["outstanding_amount"] is None and row["event_timestamp"] is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5
    assert all("cust-9" in m for m in messages)
    for field in (
        "total_revenue",
        "transaction_count",
        "last_payment_date",
        "event_timestamp",
    ):
        assert any(field in m for m in messages)


@pytest.fixture
def extra_features() -> Iterator[None]:
    @custom_feature("active_services", "int")
    def active_services(view: Any, now: datetime) -> Any:
        return (view.get("services") or {}).get("active_services")

    @custom_feature("broken_feature", "float")
    def broken_feature(view: Any, now: datetime) -> Any:
        return view["no-such-part"]["x"]

    yield
    remove_custom_feature("active_services")
    remove_custom_feature("broken_feature")


def test_custom_features_extend_schema_and_rows(
    extra_features: None, views: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    schema = feature_schema()
    assert list(schema)[-3:] == ["outstanding_amount", "active_services", "broken_feature"]
    view = _find(views, lambda v: isinstance(v["services"]["active_services"], str))
    with caplog.at_level(logging.WARNING):
        row = features_from_360(view, now=NOW)
    assert row["active_services"] == int(view["services"]["active_services"])
    assert row["broken_feature"] is None  # a raising feature does not crash the batch
    assert "custom feature 'broken_feature' raised KeyError" in caplog.text
    assert view["customer"]["id"] in caplog.text


def test_custom_feature_registration_is_validated() -> None:
    with pytest.raises(ValueError, match="standard feature"):
        custom_feature("age", "int")  # derived from birth_date: reserved too
    with pytest.raises(ValueError, match="standard feature"):
        custom_feature("birth_date", "int")
    for reserved in ("customer_id", "event_timestamp", *DWH_ONLY_FEATURE_TYPES):
        with pytest.raises(ValueError, match="reserved column"):
            custom_feature(reserved, "float")
    with pytest.raises(ValueError, match="not one of string, float, int"):
        custom_feature("x", "decimal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an identifier"):
        custom_feature("my feature", "int")
    with pytest.raises(ValueError, match="already defined"):
        custom_feature("outstanding_amount", "float")(lambda view, now: 1.0)
