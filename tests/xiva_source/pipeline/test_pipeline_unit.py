"""The pipeline's pure parts: the report, the options, the Arrow helpers, source dispatch."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import pyarrow as pa
import pytest

from xiva_source.features.catalogue import DWH_ONLY_FEATURES, STANDARD_FEATURES
from xiva_source.pipeline import PullOptions, PullReport, feature_arrow_types, pull_batches
from xiva_source.pipeline.pull import customer_ranges, dwh_read
from xiva_source.pipeline.report import FAILED_IDS_KEPT, record_fallback
from xiva_source.pipeline.tables import (
    chunks,
    concat,
    conform,
    rename_timestamp,
    take_ids,
    to_source_names,
)
from xiva_source.settings import load_settings

TS = pa.timestamp("us", tz="UTC")


def test_report_counts_rows_and_keeps_the_first_failed_ids() -> None:
    report = PullReport()
    report.add_rows("xiva", 3)
    report.add_rows("xiva", 2)
    report.add_failed_customers(["a", "b", "c"])
    report.add_failed_customers([f"x{i}" for i in range(10)])
    assert report.rows_by_source == {"xiva": 5}
    assert report.failed_customers == 13
    assert report.failed_customer_ids == ["a", "b", "c", "x0", "x1"]
    assert len(report.failed_customer_ids) == FAILED_IDS_KEPT


def test_record_fallback_reports_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    report = PullReport()
    with caplog.at_level(logging.INFO):  # the summary line reports it; the log at INFO
        record_fallback(report, "xiva", "dwh", RuntimeError("down"))
    assert report.fallbacks == ["xiva failed, serving from dwh only: down"]
    assert report.errors == {"xiva": "down"}
    assert "auto mode fallback" in caplog.text


def test_merged_reports_sum_counts_and_join_lists() -> None:
    into = PullReport(mode="auto", rows_by_source={"dwh": 2}, xiva_calls=3, fallbacks=["a"])
    into.merge(
        PullReport(
            rows_by_source={"dwh": 5, "xiva": 1},
            xiva_calls=4,
            fallbacks=["b"],
            pending_retries=None,
            max_lateness_seconds=7.0,
            errors={"dwh": "down"},
        )
    )
    assert into.mode == "auto"
    assert into.rows_by_source == {"dwh": 7, "xiva": 1}
    assert into.xiva_calls == 7 and into.fallbacks == ["a", "b"]
    assert into.pending_retries is None and into.max_lateness_seconds == 7.0
    assert into.errors == {"dwh": "down"}


def _full_report(tag: str, n: int) -> PullReport:
    """A report with every field set (none left at its default)."""
    report = PullReport(
        mode="auto",
        rows_by_source={"xiva": n, "dwh": 2 * n},
        xiva_calls=3 * n,
        xiva_throttled=n,
        fallbacks=[f"{tag} fallback"],
        errors={"pending": f"{tag} down"},
        pending_retries=4 * n,
        retried=5 * n,
        recovered=n,
        max_lateness_seconds=10.0 * n,
        overlap_seconds=900.0 + n,
    )
    report.add_failed_customers([f"{tag}-f{i}" for i in range(n)])
    for i in range(n):
        report.add_gone(f"{tag}-g{i}")
        report.add_malformed(f"{tag}-m{i}")
        report.add_late(1.0)
    return report


def test_merging_into_an_empty_report_copies_every_field() -> None:
    """A field added to PullReport and forgotten by merge() fails here."""
    full = _full_report("a", 3)
    merged = PullReport()
    merged.merge(full)
    assert merged == full
    assert {f.name for f in dataclasses.fields(PullReport)} - {"progress"} == {
        f.name for f in dataclasses.fields(PullReport) if f.compare
    }


def test_merging_adds_counts_keeps_maxima_and_the_first_ids() -> None:
    a, b = _full_report("a", 3), _full_report("b", 4)
    a.merge(b)
    assert a.rows_by_source == {"xiva": 7, "dwh": 14}
    assert (a.xiva_calls, a.xiva_throttled, a.failed_customers) == (21, 7, 7)
    assert (a.pending_retries, a.retried, a.recovered) == (28, 35, 7)
    assert (a.gone, a.malformed, a.late_changes) == (7, 7, 7)
    assert a.max_lateness_seconds == 40.0 and a.overlap_seconds == 904.0
    assert a.fallbacks == ["a fallback", "b fallback"]
    assert a.errors == {"pending": "b down"}  # the later report's error for the same key
    assert a.failed_customer_ids == ["a-f0", "a-f1", "a-f2", "b-f0", "b-f1"]
    assert a.gone_ids == ["a-g0", "a-g1", "a-g2", "b-g0", "b-g1"]
    assert a.malformed_ids == ["a-m0", "a-m1", "a-m2", "b-m0", "b-m1"]
    assert len(a.malformed_ids) == FAILED_IDS_KEPT
    # Unknown pending count (a table that could not be read) stays unknown.
    a.merge(PullReport(pending_retries=None))
    assert a.pending_retries is None
    a.merge(PullReport(pending_retries=2))
    assert a.pending_retries is None
    # The same fallback twice (two parts of one pull) is listed once; the mode set stays.
    b.merge(PullReport(mode="dwh", fallbacks=["b fallback"]))
    assert b.fallbacks == ["b fallback"] and b.mode == "auto"


def test_the_merged_report_is_left_unchanged() -> None:
    a, b = _full_report("a", 2), _full_report("b", 2)
    before = dataclasses.replace(b, rows_by_source=dict(b.rows_by_source))
    a.merge(b)
    assert b == before


def test_options_come_from_the_offline_store_config_with_defaults_for_the_rest() -> None:
    assert PullOptions.from_repo_config(None) == PullOptions()
    store_config = SimpleNamespace(snapshot_table="s", write_snapshots=False)
    config = SimpleNamespace(offline_store=store_config)
    options = PullOptions.from_repo_config(config)
    assert options.snapshot_table == "s" and options.write_snapshots is False
    assert options.pull_overlap_seconds == PullOptions().pull_overlap_seconds
    settings = load_settings(env_file=None, dwh_url="sqlite:///dwh.sqlite")
    assert options.snapshot_database(settings) == "sqlite:///dwh.sqlite"
    assert (
        PullOptions(snapshot_url="sqlite:///s.db").snapshot_database(settings) == "sqlite:///s.db"
    )


def test_feature_types_are_the_catalogues() -> None:
    types = feature_arrow_types()
    assert set(STANDARD_FEATURES) <= set(types)
    assert list(types)[-len(DWH_ONLY_FEATURES) :] == list(DWH_ONLY_FEATURES)
    assert types["city"] == pa.string() and types["birth_date"] == pa.timestamp("us", tz="UTC")
    assert "age" not in types  # derived when read, never pulled
    assert types["total_revenue"] == pa.float64()


def test_conform_gives_the_output_shape() -> None:
    table = pa.table(
        {
            "updated_at": pa.array([datetime(2026, 1, 1)], pa.timestamp("us")),
            "customer_id": ["a"],
            "age": pa.array([3], pa.int32()),
            "extra": [1],
        }
    )
    out = conform(rename_timestamp(table, "updated_at"), ["age", "city"], {"age": pa.int64()})
    assert out.schema == pa.schema(
        [
            ("customer_id", pa.string()),
            ("age", pa.int64()),
            ("city", pa.null()),
            ("event_timestamp", TS),
        ]
    )
    assert out.column("event_timestamp").to_pylist() == [datetime(2026, 1, 1, tzinfo=UTC)]
    assert conform(None, ["age"], {"age": pa.int64()}).num_rows == 0


def test_a_created_timestamp_is_kept_and_named_back_as_the_source_names_it() -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "customer_id": ["a"],
            "v": [1.0],
            "updated_at": pa.array([stamp], TS),
            "loaded_at": pa.array([stamp], TS),
        }
    )
    pulled = conform(rename_timestamp(table, "updated_at", "loaded_at"), ["v"], {})
    assert pulled.column_names == ["customer_id", "v", "event_timestamp", "created_timestamp"]
    assert to_source_names(pulled, "updated_at", "loaded_at").column_names == [
        "customer_id",
        "v",
        "updated_at",
        "loaded_at",
    ]
    assert to_source_names(pulled, "ts").column_names == ["customer_id", "v", "ts"]
    bare = to_source_names(pulled.drop_columns(["created_timestamp"]), "ts", "made")
    assert bare.column_names == ["customer_id", "v", "ts", "made"]
    assert bare.column("made").null_count == 1 and bare.schema.field("made").type == TS


def test_chunks_take_ids_and_concat() -> None:
    table = pa.table({"customer_id": [f"c{i}" for i in range(5)], "v": list(range(5))})
    assert [t.num_rows for t in chunks(table, 2)] == [2, 2, 1]
    assert list(chunks(table.slice(0, 0), 2)) == []
    assert take_ids(table, ["c1", "c3"]).column("v").to_pylist() == [1, 3]  # type: ignore[union-attr]
    assert take_ids(table, []) is None and take_ids(None, ["c1"]) is None
    both = concat([table.slice(0, 1), table.slice(1, 1).append_column("w", pa.array([9]))])
    assert both is not None and both.column_names == ["customer_id", "v"]
    assert concat([]) is None


def test_an_unknown_source_is_a_type_error() -> None:
    settings = load_settings(env_file=None)
    pull = pull_batches(
        object(),  # type: ignore[arg-type]
        settings=settings,
        feature_names=[],
        start_date=None,
        end_date=datetime.now(UTC),
    )
    with pytest.raises(TypeError, match="XivaSource, DwhSource and CustomerSource"):
        next(pull)


@pytest.mark.usefixtures("subprocesses")
def test_the_pipeline_imports_no_feast_and_no_feast_plugin() -> None:
    code = (
        "import sys, xiva_source.pipeline as p\n"
        "for name in p.__all__: getattr(p, name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('feast', 'pandas')\n"
        "       or m.startswith('xiva_source.feast_plugin')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_a_pull_that_reads_the_dwh_alone_is_cut_into_customer_ranges() -> None:
    settings = load_settings(env_file=None, feature_store_data_source="auto")
    xiva = SimpleNamespace(source_kind="xiva", name="xiva_customers")
    dwh = SimpleNamespace(source_kind="dwh", name="dwh_features")
    customer = SimpleNamespace(source_kind="customer", name="customers", xiva=xiva, dwh=dwh)
    now = datetime.now(UTC)
    assert dwh_read(dwh, settings) is dwh  # type: ignore[arg-type]
    assert dwh_read(xiva, settings) is None  # type: ignore[arg-type]
    assert dwh_read(customer, settings) is None  # type: ignore[arg-type]
    in_dwh_mode = load_settings(env_file=None, feature_store_data_source="dwh")
    assert dwh_read(customer, in_dwh_mode) is dwh  # type: ignore[arg-type]
    for source in (xiva, customer):
        ranges = customer_ranges(
            source,  # type: ignore[arg-type]
            4,
            settings=settings,
            start_date=None,
            end_date=now,
        )
        assert ranges is None
        pull = pull_batches(
            source,  # type: ignore[arg-type]
            settings=settings,
            feature_names=["city"],
            start_date=None,
            end_date=now,
            customer_range=("a", "b"),
        )
        with pytest.raises(ValueError, match="reads Xiva \\(auto mode\\)"):
            next(pull)
    # One part asked: the whole range, no query.
    one = customer_ranges(dwh, 1, settings=settings, start_date=None, end_date=now)  # type: ignore[arg-type]
    assert one == [(None, None)]
