"""Demo data for the warehouse: the DWH contract's tables, created and filled deterministically.

:func:`create_demo_dwh` writes ``customer_features_view`` and the three history tables of the
contract (``docs/dwh.md``; the tables come from :mod:`xiva_source.dwh.schema`) for a list of
customers (or a simulator's); the demo, the benchmark and the tests use it. :func:`seed_dwh`
(``xiva-source dwh seed``) fills a real warehouse with it, for the customers of the simulator that
``xiva-source simulator`` runs with the same ``--customers`` and ``--seed``. It lives with the
demo, not in :mod:`xiva_source.dwh`: the warehouse package reads a DWH, it does not invent one.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa

from xiva_source.dwh.engine import get_engine, sql_error_text
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.schema import contract_metadata
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE
from xiva_source.redaction import redact_url
from xiva_source.timeutil import as_utc, utc_now

__all__ = ["DemoDwh", "create_demo_dwh", "seed_dwh"]

logger = logging.getLogger(__name__)

_STATUSES = ("active", "inactive", "suspended")
_TIERS = ("bronze", "silver", "gold", "platinum")
_CITIES = ("Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa", "Halifax")
_TX_TYPES = ("purchase", "refund", "top_up")
_NULL_RATE = 0.12
_INSERT_BATCH = 5000


class _HasCustomerIds(Protocol):
    def customer_ids(self) -> list[str]: ...


@dataclass
class DemoDwh:
    """What :func:`create_demo_dwh` wrote.

    Attributes:
        customer_ids: Every customer in ``customer_features_view``.
        shared_ids: Customers in both the DWH and Xiva.
        dwh_only_ids: Customers only in the DWH.
        xiva_only_ids: Customers only in Xiva (not in the DWH).
        rows: Rows written per table.
    """

    customer_ids: list[str]
    shared_ids: list[str]
    dwh_only_ids: list[str]
    xiva_only_ids: list[str]
    rows: dict[str, int] = field(default_factory=dict)


def create_demo_dwh(
    url: str,
    customers: Sequence[str] | _HasCustomerIds,
    seed: int = 0,
    *,
    reference_time: datetime | None = None,
    xiva_only_every: int = 10,
    dwh_only_fraction: float = 0.1,
) -> DemoDwh:
    """Create (replacing them) and fill the DWH contract's tables, deterministically.

    ``customer_features_view`` gets every ``xiva_only_every``-th customer left out (they exist
    only in Xiva) plus ``dwh_only_fraction`` extra customers that exist only in the DWH; about
    12% of the nullable cells are NULL, so ``auto`` mode's per-feature merge is observable.
    ``updated_at`` spreads over the three years before ``reference_time`` (some rows are years
    old). The history tables get transactions, monthly churn snapshots and offers for every DWH
    customer.

    Args:
        url: SQLAlchemy URL (SQLite or PostgreSQL; a PostgreSQL URL's ``search_path`` picks the
            schema).
        customers: Customer ids, or a simulator (its ``customer_ids()`` are used).
        seed: Same seed and customers, same rows.
        reference_time: "Now" of the data (default: the start of the current hour, UTC; a naive
            datetime is taken as UTC).
        xiva_only_every: Leave every n-th customer out of the DWH (0 keeps all).
        dwh_only_fraction: Extra DWH-only customers, as a fraction of ``customers``.

    Returns:
        A :class:`DemoDwh` naming the shared, DWH-only and Xiva-only customers.

    Raises:
        DwhError: The URL is unusable, or the tables cannot be created or written.

    Example:
        >>> info = create_demo_dwh("sqlite:///data/dwh.sqlite", sim, seed=7)  # doctest: +SKIP
    """
    ids = list(customers.customer_ids() if hasattr(customers, "customer_ids") else customers)
    rng = random.Random(seed)
    moment = reference_time or utc_now().replace(minute=0, second=0, microsecond=0)
    # The tables' DateTime columns are naive and hold UTC.
    now = as_utc(moment).replace(tzinfo=None)
    xiva_only = [c for i, c in enumerate(ids) if xiva_only_every and i % xiva_only_every == 0]
    excluded = set(xiva_only)
    shared = [c for c in ids if c not in excluded]
    dwh_only = [
        str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for _ in range(round(len(ids) * dwh_only_fraction))
    ]
    dwh_ids = shared + dwh_only
    rows = _demo_rows(dwh_ids, rng, now)

    engine = get_engine(url)
    metadata = contract_metadata()  # the contract's tables, written once (xiva_source.dwh.schema)
    tables = metadata.tables
    try:
        metadata.drop_all(engine, checkfirst=True)
        metadata.create_all(engine)
        with engine.begin() as conn:
            for name, records in rows.items():
                for start in range(0, len(records), _INSERT_BATCH):
                    conn.execute(sa.insert(tables[name]), records[start : start + _INSERT_BATCH])
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"creating the demo DWH at {redact_url(url)!r} failed: {sql_error_text(e)}"
        ) from e
    logger.info(
        "demo DWH at %s: %d customers (%d DWH-only, %d Xiva-only left out)",
        redact_url(url),
        len(dwh_ids),
        len(dwh_only),
        len(xiva_only),
    )
    return DemoDwh(
        customer_ids=dwh_ids,
        shared_ids=shared,
        dwh_only_ids=dwh_only,
        xiva_only_ids=xiva_only,
        rows={name: len(records) for name, records in rows.items()},
    )


def seed_dwh(url: str, customers: int, seed: int = 42, *, replace: bool = False) -> DemoDwh:
    """Fill the warehouse at ``url`` with the demo population of a simulator's customers.

    The customers are those of ``xiva-source simulator --customers <customers> --seed <seed>``
    (computed, no server is started); the rows are :func:`create_demo_dwh`'s for them, with the
    demo's seed. Tables that hold rows are never overwritten unless ``replace`` is set.

    Args:
        url: The warehouse's SQLAlchemy URL (``DWH_URL``; SQLite or PostgreSQL).
        customers: The simulator's number of customers.
        seed: The simulator's seed (``make demo`` and ``xiva-source simulator`` use 42).
        replace: Drop and refill the contract's tables even when they hold rows.

    Returns:
        What was written (:class:`DemoDwh`).

    Raises:
        ConfigurationError: ``url`` is not a usable SQLAlchemy URL.
        DwhError: A contract table already holds rows (and ``replace`` is not set), or the
            warehouse cannot be read or written.
    """
    from xiva_source.dwh.schema import CONTRACT_TABLES, init_dwh
    from xiva_source.simulator import SimulatorConfig, XivaSimulator

    report = init_dwh(url, dry_run=True)  # checks the URL and the driver, reaches the warehouse
    existing = [t.name for t in report.tables if t.status != "missing"]
    if existing and not replace:
        engine = get_engine(url)
        try:
            with engine.connect() as conn:
                filled = {
                    name: conn.execute(
                        sa.select(sa.func.count()).select_from(sa.table(name))
                    ).scalar_one()
                    for name in existing
                }
        except sa.exc.SQLAlchemyError as e:
            raise DwhError(
                f"counting the rows of the DWH at {redact_url(url)!r} failed: {sql_error_text(e)}"
            ) from e
        filled = {name: rows for name, rows in filled.items() if rows}
        if filled:
            tables = ", ".join(f"{name} ({rows:,} rows)" for name, rows in filled.items())
            raise DwhError(
                f"the DWH at {redact_url(url)!r} already holds data: {tables}; nothing was written",
                hint="Seed an empty database (or schema), or pass --replace to drop and refill "
                f"the contract's tables ({', '.join(CONTRACT_TABLES)}): their rows are lost.",
            )
    sim = XivaSimulator(SimulatorConfig(customers=customers, seed=seed))  # never started
    return create_demo_dwh(url, sim, seed=seed)


def _demo_rows(
    dwh_ids: Sequence[str], rng: random.Random, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows; draws from ``rng`` in a fixed order, so a seed gives the same rows."""

    def maybe(value: Any) -> Any:
        return None if rng.random() < _NULL_RATE else value

    features: list[dict[str, Any]] = []
    tx: list[dict[str, Any]] = []
    churn: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    for cid in dwh_ids:
        count = rng.randint(0, 120)
        avg = Decimal(f"{rng.uniform(5, 150):.2f}")
        revenue = Decimal(f"{float(avg) * count:.2f}")
        features.append(
            {
                "customer_id": cid,
                "customer_status": maybe(rng.choice(_STATUSES)),
                "total_revenue": maybe(revenue),
                "transaction_count": maybe(count),
                "last_purchase_days_ago": maybe(rng.randint(0, 400)),
                "avg_transaction_value": maybe(avg),
                "lifetime_value": maybe(Decimal(f"{float(revenue) * rng.uniform(1, 3):.2f}")),
                "churn_score": maybe(Decimal(f"{rng.random():.4f}")),
                "customer_tier": maybe(rng.choice(_TIERS)),
                "city": maybe(rng.choice(_CITIES)),
                "age": maybe(rng.randint(18, 90)),
                "updated_at": now - timedelta(seconds=rng.randint(60, 3 * 365 * 86400)),
            }
        )
        for _ in range(rng.randint(0, 4)):
            tx.append(
                {
                    "customer_id": cid,
                    "transaction_date": now - timedelta(seconds=rng.randint(0, 2 * 365 * 86400)),
                    "transaction_amount": Decimal(f"{rng.uniform(1, 300):.2f}"),
                    "transaction_type": rng.choice(_TX_TYPES),
                }
            )
        churned_at: date | None = None
        for months_ago in range(rng.randint(1, 3), 0, -1):
            snapshot = (now - timedelta(days=30 * months_ago)).date()
            churned = churned_at is not None or rng.random() < 0.08
            churned_at = churned_at or (snapshot if churned else None)
            churn.append(
                {
                    "customer_id": cid,
                    "churned": churned,
                    "churn_date": churned_at,
                    "total_revenue": revenue,
                    "transaction_count": count,
                    "snapshot_date": snapshot,
                }
            )
        for _ in range(rng.randint(0, 2)):
            offers.append(
                {
                    "customer_id": cid,
                    "offer_id": rng.randint(1, 50),
                    "converted": rng.random() < 0.3,
                    "total_revenue": revenue,
                    "transaction_count": count,
                    "created_at": now - timedelta(seconds=rng.randint(0, 365 * 86400)),
                }
            )
    return {
        CUSTOMER_FEATURES_TABLE: features,
        "customer_transaction_history": tx,
        "customer_churn_history": churn,
        "customer_offer_history": offers,
    }
