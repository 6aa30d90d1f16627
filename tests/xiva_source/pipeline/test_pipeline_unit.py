"""The pipeline's pure parts: the report, the options, the Arrow helpers, source dispatch."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import pyarrow as pa
import pytest

from xiva_source.features.catalogue import DWH_ONLY_FEATURES, STANDARD_FEATURES
from xiva_source.pipeline import PullOptions, PullReport, feature_arrow_types, pull_batches
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

pytestmark = pytest.mark.unit

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


def test_the_pipeline_imports_no_feast_and_no_feast_plugin() -> None:
    code = (
        "import sys, xiva_source.pipeline as p\n"
        "for name in p.__all__: getattr(p, name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('feast', 'pandas')\n"
        "       or m.startswith('xiva_source.feast_plugin')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
