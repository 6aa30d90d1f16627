"""The Prometheus textfile of a run: names, labels, counters that add up, atomic replacement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from xiva_source.jobs.metrics import render, run_metrics, write_textfile
from xiva_source.jobs.summary import RunSummary, ViewRun
from xiva_source.pipeline.report import PullReport

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)


def _summary(**changes: object) -> RunSummary:
    view = ViewRun("customer_features", None, NOW, rows=7, rows_by_source={"xiva": 5, "dwh": 2})
    summary = RunSummary(
        status="ok",
        mode="auto",
        views=[view],
        report=PullReport(rows_by_source={"xiva": 5, "dwh": 2}, xiva_calls=12, xiva_throttled=2),
        duration=3.5,
    )
    for name, value in changes.items():
        setattr(summary, name, value)
    return summary


def _families(summary: RunSummary) -> list:  # type: ignore[type-arg]
    return run_metrics(
        summary,
        project="loyalty",
        now=NOW,
        watermarks={("customer_features", "xiva"): NOW - timedelta(seconds=90)},
        feast_watermarks={"customer_features": NOW - timedelta(seconds=120), "never": None},
        failed_views=["customer_dwh_features"],
    )


def test_the_file_names_feasts_series_and_ours(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "loyalty.prom"
    write_textfile(path, _families(_summary()))
    text = path.read_text()

    assert "# TYPE feast_materialization_result_total counter" in text
    assert (
        'feast_materialization_result_total{feature_view="customer_features",status="success"} 1'
        in text
    )
    assert (
        'feast_materialization_result_total{feature_view="customer_dwh_features",'
        'status="failure"} 1' in text
    )
    assert (
        'feast_feature_freshness_seconds{feature_view="customer_features",project="loyalty"} 120'
        in text
    )
    assert 'rows_total{feature_view="customer_features",source="xiva"} 5' in text
    assert (
        'loyalty_watermark_age_seconds{feature_view="customer_features",source="xiva"} 90' in text
    )
    assert "loyalty_xiva_requests_total 12" in text and "loyalty_xiva_throttled_total 2" in text
    assert "loyalty_materialization_duration_seconds 3.5" in text
    assert "loyalty_materialization_exit_status 0" in text
    assert 'feature_view="never"' not in text  # never materialized: no freshness sample
    assert not [p for p in path.parent.iterdir() if p.name != "loyalty.prom"]  # no temp left


def test_counters_add_up_across_runs_and_gauges_are_the_last_runs(tmp_path: Path) -> None:
    path = tmp_path / "loyalty.prom"
    write_textfile(path, _families(_summary()))
    failed = _summary(status="failed", views=[], duration=1.0)
    failed.report.fallbacks.append("xiva failed")
    write_textfile(path, _families(failed))
    text = path.read_text()

    assert "loyalty_materialization_runs_total 2" in text
    assert "loyalty_materialization_failures_total 1" in text
    assert "loyalty_materialization_fallbacks_total 1" in text
    assert "loyalty_xiva_requests_total 24" in text
    # A series this run did not touch keeps its count.
    assert (
        'feast_materialization_result_total{feature_view="customer_features",status="success"} 1'
        in text
    )
    assert (
        'feast_materialization_result_total{feature_view="customer_dwh_features",'
        'status="failure"} 2' in text
    )
    assert "loyalty_materialization_exit_status 1" in text
    assert "loyalty_materialization_duration_seconds 1" in text


def test_an_unreadable_previous_file_starts_the_counters_again(tmp_path: Path) -> None:
    path = tmp_path / "loyalty.prom"
    path.write_text('garbage {\n# TYPE x counter\nx{a="1"} not-a-number\n')
    write_textfile(path, _families(_summary()))
    assert "loyalty_materialization_runs_total 1" in path.read_text()


def test_label_values_are_escaped() -> None:
    families = _families(_summary())
    families[0].set(1, feature_view='we"ird\\view', status="success")
    assert 'feature_view="we\\"ird\\\\view"' in render(families)
