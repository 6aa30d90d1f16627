"""Online reads with the features that age: Feast's results, derived as of the read, cheaply.

Against the real Redis, a repository copy of the test module's own with customers written in
Feast's layout (the job's bulk writer):

- ``get_online_features`` (sync and async) through ``LoyaltyRedisOnlineStore`` gives exactly
  stock Feast's response (``OnlineStore``'s own methods on the same store) for services and
  feature lists, 1 and 100 customers, unknown ones, short and full names;
- ``age`` and ``last_purchase_days_ago`` are derived as of the derivation's clock (a fixed
  moment years from now), in-process and from ``feast serve`` (a real subprocess on a free
  port, started with the same fixed clock);
- in a training set the python-mode view gets only its inputs and gives Feast's own values,
  as of each label (also through the real offline store, full feature names);
- the Feast functions ``feast_plugin.on_demand`` mirrors are the ones it was checked against.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from feast import FeatureStore
from feast.infra.online_stores.online_store import OnlineStore

from tests.support.ageing import days_since, years_between
from tests.support.feast import FeastEnv, make_repo
from tests.support.feast_serve import FeastServer
from tests.support.services import REDIS_URL
from tests.support.tiers import service
from xiva_source.features.derived import AS_OF, derivation_clock, derive_row

NOW = datetime(2031, 3, 1, 10, 30, tzinfo=UTC)  # the injected clock: years from the real one
TODAY = NOW.date()
DERIVED = ["customer_time_features:last_purchase_days_ago", "customer_time_features:age"]


@dataclass
class Served:
    """The module's repository and what was written to Redis for it."""

    repo: Path
    ids: list[str]
    paid: dict[str, date | None]
    born: dict[str, date | None]

    def store(self) -> FeatureStore:
        return FeatureStore(repo_path=str(self.repo))


def _facts(i: int) -> tuple[date | None, date | None]:
    """Customer i's payment and birth dates: every case of the rules, then ordinary ones."""
    special: list[tuple[date | None, date | None]] = [
        (None, None),
        (TODAY, date(2000, 2, 29)),  # leap-day birthday, common year: 31 completed on 1 March
        (TODAY + timedelta(days=1), TODAY + timedelta(days=1)),  # after the clock: missing
        (date(2031, 2, 28), date(2013, 3, 1)),  # 18 today
        (date(2024, 2, 29), date(2013, 3, 2)),  # 17 until tomorrow
    ]
    if i < len(special):
        return special[i]
    return date(2025, 1, 1) + timedelta(days=i * 7), date(1950, 1, 1) + timedelta(days=i * 97)


@pytest.fixture(scope="module")
@service("redis")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import redis
    from feast.value_type import ValueType

    from xiva_source.feast_plugin.bulk_writer import BulkWriter
    from xiva_source.pipeline.context import feature_arrow_types

    project = f"serve_{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REDIS_URL", REDIS_URL)
        mp.setenv("FEATURE_STORE_ENV_FILE", "none")
        repo = make_repo(tmp_path_factory.mktemp("serve") / "repo", project)
        store = FeatureStore(repo_path=str(repo))
        ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(120)]
        facts = [_facts(i) for i in range(len(ids))]
        types = feature_arrow_types()
        n = len(ids)

        def col(name: str, values: list[Any]) -> pa.Array:
            return pa.array(values, types[name])

        def stamp(day: date | None) -> datetime | None:
            return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)

        views = {
            "customer_features": {
                "customer_status": col("customer_status", ["active", None] * (n // 2)),
                "total_revenue": col("total_revenue", [float(i) for i in range(n)]),
                "transaction_count": col("transaction_count", list(range(n))),
                "last_payment_date": col("last_payment_date", [stamp(p) for p, _ in facts]),
                "customer_tier": col("customer_tier", ["gold"] * n),
                "city": col("city", ["Oslo", "Lima", None] * (n // 3)),
                "birth_date": col("birth_date", [stamp(b) for _, b in facts]),
                "outstanding_amount": col("outstanding_amount", [None] * n),
            },
            "customer_dwh_features": {
                "avg_transaction_value": col("avg_transaction_value", [1.5] * n),
                "lifetime_value": col("lifetime_value", [float(i) * 2 for i in range(n)]),
                "churn_score": col("churn_score", [None, 0.25] * (n // 2)),
            },
        }
        client = redis.Redis.from_url(REDIS_URL)
        writer = BulkWriter(client, store.config)
        written = pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC"))
        for name, columns in views.items():
            table = pa.table({"customer_id": ids, **columns, "event_timestamp": written})
            writer.write(store.get_feature_view(name), table, {"customer_id": ValueType.STRING})
        try:
            yield Served(
                repo,
                ids,
                paid={c: p for c, (p, _) in zip(ids, facts, strict=True)},
                born={c: b for c, (_, b) in zip(ids, facts, strict=True)},
            )
        finally:
            keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture
def store(served: Served, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    return served.store()


def _stock_args(store: FeatureStore, features: Any, rows: Any, full: bool) -> dict[str, Any]:
    """The arguments of the base class's get_online_features(_async) on the same online store."""
    return {
        "self": store._get_provider().online_store,  # type: ignore[attr-defined]
        "config": store.config,
        "features": features,
        "entity_rows": rows,
        "registry": store.registry,
        "project": store.project,
        "full_feature_names": full,
    }


def _stock(store: FeatureStore, features: Any, rows: Any, full: bool) -> Any:
    """Feast's own get_online_features (the base class's method) on the same online store."""
    return OnlineStore.get_online_features(**_stock_args(store, features, rows, full))


def _refs(store: FeatureStore, features: Any) -> list[str]:
    if isinstance(features, list):
        return features
    return [
        f"{p.name_to_use()}:{f.name}" for p in features.feature_view_projections for f in p.features
    ]


def _requests(store: FeatureStore) -> list[tuple[str, Any]]:
    return [
        ("ml_features", store.get_feature_service("ml_features")),
        ("campaign_features", store.get_feature_service("campaign_features")),
        ("derived only", DERIVED),
        ("age + DWH", ["customer_time_features:age", "customer_dwh_features:churn_score"]),
        ("facts + derived", ["customer_features:birth_date", *DERIVED, "customer_features:city"]),
    ]


@pytest.mark.parametrize("size", [1, 100])
@pytest.mark.parametrize("full", [False, True])
def test_reads_give_stock_feasts_response(
    served: Served, store: FeatureStore, size: int, full: bool
) -> None:
    ids = served.ids[:size] if size == 1 else [*served.ids[: size - 3], "nobody", "x", "y"]
    rows = [{"customer_id": c} for c in ids]
    with derivation_clock(lambda: NOW):
        for label, features in _requests(store):
            ours = store.get_online_features(
                features=features, entity_rows=rows, full_feature_names=full
            )
            if not full:
                stock = _stock(store, features, rows, full)
                assert ours.proto == stock.proto, label
                assert ours.to_dict() == stock.to_dict(), label
                continue
            # Full names: Feast 0.67 drops a python-mode view's outputs (named "age", never
            # "customer_time_features__age"); they come last, named as the pandas mode did.
            want = _stock(store, features, rows, True).to_dict()
            short = _stock(store, features, rows, False).to_dict()
            for ref in (r for r in _refs(store, features) if r.startswith("customer_time")):
                want[ref.replace(":", "__")] = short[ref.split(":")[1]]
            got = ours.to_dict()
            assert got == want, label
            assert list(got) == list(want), label
        # entity rows given as columns, as feast serve passes them
        columns = {"customer_id": ids}
        ours = store.get_online_features(features=DERIVED, entity_rows=columns)
        assert ours.proto == _stock(store, DERIVED, columns, False).proto


def test_async_reads_give_stock_feasts_response(served: Served, store: FeatureStore) -> None:
    rows = [{"customer_id": c} for c in served.ids[:50]]

    async def both(features: Any) -> tuple[Any, Any]:
        ours = await store.get_online_features_async(features=features, entity_rows=rows)
        stock_args = _stock_args(store, features, rows, False)
        stock = await OnlineStore.get_online_features_async(**stock_args)
        return ours, stock

    async def every() -> list[tuple[Any, Any]]:
        return [await both(features) for _, features in _requests(store)]

    with derivation_clock(lambda: NOW):
        pairs = asyncio.run(every())
    for (label, _), (ours, stock) in zip(_requests(store), pairs, strict=True):
        assert ours.proto == stock.proto, label


def _expected(served: Served, ids: list[str], on: date) -> dict[str, list[int | None]]:
    return {
        "age": [years_between(served.born.get(c), on) for c in ids],
        "last_purchase_days_ago": [days_since(served.paid.get(c), on) for c in ids],
    }


def test_online_reads_derive_as_of_the_clock(served: Served, store: FeatureStore) -> None:
    ids = [*served.ids[:10], "nobody"]
    with derivation_clock(lambda: NOW):
        got = store.get_online_features(
            features=store.get_feature_service("ml_features"),
            entity_rows=[{"customer_id": c} for c in ids],
        ).to_dict()
    want = _expected(served, ids, TODAY)
    assert {k: got[k] for k in want} == want
    assert want["age"][:5] == [None, 31, None, 18, 17]  # the cases of _facts, by hand
    assert want["last_purchase_days_ago"][:5] == [None, 0, None, 1, 2557]
    # A year later (the same stored facts): everyone with a fact has aged.
    later = NOW + timedelta(days=365)
    with derivation_clock(lambda: later):
        aged = store.get_online_features(
            features=DERIVED, entity_rows=[{"customer_id": c} for c in ids]
        ).to_dict()
    assert aged == {"customer_id": ids, **_expected(served, ids, later.date())}


def test_feast_serve_derives_as_of_its_clock(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    ids = [*served.ids[:20], "nobody"]
    store = served.store()
    with derivation_clock(lambda: NOW):
        local = store.get_online_features(
            features=store.get_feature_service("ml_features"),
            entity_rows=[{"customer_id": c} for c in ids],
        ).to_dict()
    with FeastServer(served.repo, now=NOW) as server:
        one = server.online_features({"customer_id": ids[:1]}, service="ml_features")
        many = server.online_features({"customer_id": ids}, service="ml_features")
        plain = server.online_features({"customer_id": ids}, features=DERIVED)
        full = server.online_features(
            {"customer_id": ids}, features=DERIVED, full_feature_names=True
        )
    want = _expected(served, ids, TODAY)
    assert one["age"] == want["age"][:1]
    assert {k: many[k] for k in want} == want
    assert {k: plain[k] for k in want} == want
    assert full.get("customer_time_features__age") == want["age"], sorted(full)
    # The same values as the in-process read, feature for feature.
    assert set(many) == set(local)
    for name, values in local.items():
        if name not in ("last_payment_date", "birth_date"):  # JSON carries epoch seconds
            assert many[name] == values, name


def _retrieval_table(served: Served, full: bool) -> pa.Table:
    """A retrieval table as the offline store hands it to Feast: facts, others, the as-of."""
    ids = served.ids[:40]
    labels = [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=97 * i) for i in range(len(ids))]

    def stamp(day: date | None) -> datetime | None:
        return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)

    prefix = "customer_features__" if full else ""
    return pa.table(
        {
            "customer_id": ids,
            "event_timestamp": pa.array(labels, pa.timestamp("ns", tz="UTC")),
            f"{prefix}last_payment_date": pa.array(
                [stamp(served.paid[c]) for c in ids], pa.timestamp("ns", tz="UTC")
            ),
            f"{prefix}birth_date": pa.array(
                [stamp(served.born[c]) for c in ids], pa.timestamp("ns", tz="UTC")
            ),
            f"{prefix}city": ["Oslo"] * len(ids),
            "churn_score": [0.5] * len(ids),
            AS_OF: pa.array(labels, pa.timestamp("ns", tz="UTC")),
        }
    )


@pytest.mark.parametrize("full", [False, True])
def test_training_sets_get_feasts_values_from_the_inputs_only(
    served: Served, store: FeatureStore, full: bool
) -> None:
    from xiva_source.feast_plugin.on_demand import declared_inputs_only

    view = store.get_on_demand_feature_view("customer_time_features")
    table = _retrieval_table(served, full)
    stock = view.transform_arrow(table, full)
    (ours_view,) = declared_inputs_only([view], ["customer_id"])
    ours = ours_view.transform_arrow(table, full)
    assert ours.equals(stock)
    labels = table.column(AS_OF).to_pylist()
    ages = ours.column("customer_time_features__age" if full else "age").to_pylist()
    for cid, label, age in zip(table.column("customer_id").to_pylist(), labels, ages, strict=True):
        assert age == years_between(served.born[cid], label.date()), (cid, label)
    assert type(view.feature_transformation).__name__ == "PythonTransformation"  # not changed

    # A column of nulls only keeps its declared type (Arrow alone would infer "null").
    nobody = table.slice(0, 1).set_column(6, AS_OF, pa.array([None], pa.timestamp("ns", tz="UTC")))
    assert view.transform_arrow(nobody, full).column(0).type == pa.null()
    assert ours_view.transform_arrow(nobody, full).column(0).type == pa.int64()


def test_historical_retrieval_derives_as_of_each_label(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    feast_env.set_mode("dwh")
    store = FeatureStore(repo_path=str(feast_repo))
    ids = feast_env.dwh.shared_ids[:8]
    labels = [(c, datetime.now(UTC) - timedelta(days=d)) for c in ids for d in (0, 400, 4000)]
    entity_df = pd.DataFrame({"customer_id": [c for c, _ in labels], "at": [t for _, t in labels]})
    out = store.get_historical_features(
        entity_df=entity_df,
        features=[*DERIVED, "customer_features:birth_date", "customer_features:last_payment_date"],
        full_feature_names=True,
    ).to_df()
    assert AS_OF not in out.columns
    checked = 0
    records: list[dict[Any, Any]] = out.to_dict("records")
    for row in records:
        facts = {
            "birth_date": row["customer_features__birth_date"],
            "last_payment_date": row["customer_features__last_payment_date"],
        }
        want = derive_row({k: None if pd.isna(v) else v for k, v in facts.items()}, row["at"])
        got = {
            "age": row["customer_time_features__age"],
            "last_purchase_days_ago": row["customer_time_features__last_purchase_days_ago"],
        }
        assert {k: None if pd.isna(v) else int(v) for k, v in got.items()} == want, row
        checked += want["age"] is not None
    assert checked >= 8  # ages as of labels years apart, not one value per customer
    by_customer = out.groupby("customer_id")["customer_time_features__age"].nunique()
    assert (by_customer >= 2).any()


# The Feast 0.67 functions feast_plugin.on_demand mirrors step by step. A Feast upgrade that
# changes one fails here: compare on_demand.py with the new code, then update the digest.
_MIRRORED = {
    "OnlineStore.get_online_features": "8e65b8eaf8252847",
    "OnlineStore.get_online_features_async": "3e4e22ba846a735c",
    "utils._augment_response_with_on_demand_transforms": "87cc48d3d70d07aa",
    "OnDemandFeatureView.transform_dict": "bac7a861d3ea2063",
    "OnDemandFeatureView._preprocess_feature_dict": "6243e02239a68dcf",
    "OnlineResponse.to_dict": "b1f6524d8d166669",
    "PythonTransformation.transform_arrow": "35aec86676492acb",
    "PythonTransformation.transform": "5439707eeb348228",
    "PythonTransformation.transform_singleton": "5b7460f07c46a67e",
}


def test_the_mirrored_feast_code_is_the_one_checked() -> None:
    from feast import utils
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.online_response import OnlineResponse
    from feast.transformation.python_transformation import PythonTransformation

    owners = {
        "OnlineResponse": OnlineResponse,
        "OnlineStore": OnlineStore,
        "utils": utils,
        "OnDemandFeatureView": OnDemandFeatureView,
        "PythonTransformation": PythonTransformation,
    }
    digests = {}
    for name in _MIRRORED:
        owner, attr = name.split(".")
        source = inspect.getsource(getattr(owners[owner], attr))
        digests[name] = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digests == _MIRRORED
