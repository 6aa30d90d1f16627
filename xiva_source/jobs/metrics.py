"""The Prometheus textfile every materialization run rewrites (``METRICS_TEXTFILE``).

node_exporter's textfile collector reads ``*.prom`` files from a directory; point
``METRICS_TEXTFILE`` at one there. The file is written atomically (a temporary file beside it,
then a rename), so the collector never reads half a file.

Names follow Feast's where Feast measures the same (``feast serve --metrics``, ``feast.metrics``):
``feast_materialization_result_total{feature_view,status}`` and
``feast_feature_freshness_seconds{feature_view,project}``, so the job's series sit beside the
feature server's on one dashboard. The job's own measures are ``loyalty_...``. The ``_total``
series are counters: each run adds to the values in the file it replaces (a missing or unreadable
file starts them at zero again, which Prometheus treats as a counter reset). The others are
gauges describing the last run. docs/operations.md ("Metrics") lists them.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from xiva_source.jobs.summary import RunSummary
from xiva_source.redaction import redact
from xiva_source.timeutil import as_utc

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "MetricFamily",
    "not_written",
    "render",
    "run_metrics",
    "write_run_metrics",
    "write_textfile",
]

logger = logging.getLogger(__name__)

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})? (?P<value>\S+)$")


@dataclass
class MetricFamily:
    """One metric: its name, type, help and samples (labels -> value)."""

    name: str
    kind: str
    help: str
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def set(self, value: float, **labels: str) -> None:
        """Set the sample of ``labels``."""
        self.samples[tuple(sorted(labels.items()))] = float(value)


def run_metrics(
    summary: RunSummary,
    *,
    project: str,
    now: datetime,
    watermarks: Mapping[tuple[str, str], datetime],
    feast_watermarks: Mapping[str, datetime | None],
    failed_views: Iterable[str] = (),
) -> list[MetricFamily]:
    """The run's metrics (counters hold only this run's increments; see :func:`write_textfile`).

    Args:
        summary: The finished run (any outcome).
        project: The Feast project.
        now: The moment ages are measured from.
        watermarks: Each ``(view, source)`` watermark of the job's state.
        feast_watermarks: Each view's Feast watermark (``most_recent_end_time``).
        failed_views: Views the run could not materialize (kept or failed).
    """
    result = MetricFamily(
        "feast_materialization_result_total",
        "counter",
        "Materializations per feature view and status (success, failure), as Feast counts them",
    )
    for view in summary.views:
        result.set(1, feature_view=view.name, status="success")
    for name in failed_views:
        result.set(1, feature_view=name, status="failure")
    freshness = MetricFamily(
        "feast_feature_freshness_seconds",
        "gauge",
        "Seconds since the most recent materialization end time per feature view",
    )
    for name, mark in sorted(feast_watermarks.items()):
        if mark is not None:
            freshness.set((now - mark).total_seconds(), feature_view=name, project=project)
    rows = MetricFamily(
        "loyalty_materialization_rows_total",
        "counter",
        "Rows read per feature view and source by the materialization job",
    )
    for view in summary.views:
        for source, n in view.rows_by_source.items():
            rows.set(n, feature_view=view.name, source=source)
    age = MetricFamily(
        "loyalty_watermark_age_seconds",
        "gauge",
        "Seconds since each source's watermark per feature view (how far behind it is)",
    )
    for (view_name, source), mark in sorted(watermarks.items()):
        age.set((now - mark).total_seconds(), feature_view=view_name, source=source)
    outcome = summary.outcome
    families = [result, freshness, rows, age]
    families += [
        _single("loyalty_materialization_runs_total", "counter", "Materialization runs", 1),
        _single(
            "loyalty_materialization_failures_total",
            "counter",
            "Materialization runs that failed (exit 1)",
            1 if outcome == "failed" else 0,
        ),
        _single(
            "loyalty_materialization_fallbacks_total",
            "counter",
            "Fallbacks to one source in auto mode",
            len(summary.report.fallbacks),
        ),
        _single(
            "loyalty_xiva_requests_total",
            "counter",
            "HTTP requests the materialization job sent to Xiva",
            summary.report.xiva_calls,
        ),
        _single(
            "loyalty_xiva_throttled_total",
            "counter",
            "Xiva answers 429 (rate limited) to the materialization job",
            summary.report.xiva_throttled,
        ),
        _single(
            "loyalty_materialization_exit_status",
            "gauge",
            "Exit status of the last run: 0 ok, 1 failed, 3 degraded",
            summary.exit_code,
        ),
        _single(
            "loyalty_materialization_duration_seconds",
            "gauge",
            "Seconds the last run took",
            summary.duration,
        ),
        _single(
            "loyalty_materialization_last_run_timestamp_seconds",
            "gauge",
            "When the last run ended (Unix time)",
            now.timestamp(),
        ),
        _single(
            "loyalty_materialization_fallbacks",
            "gauge",
            "Fallbacks to one source in the last run",
            len(summary.report.fallbacks),
        ),
    ]
    if summary.report.pending_retries is not None:
        families.append(
            _single(
                "loyalty_pending_retries",
                "gauge",
                "Xiva customers waiting for a retry after the last run",
                summary.report.pending_retries,
            )
        )
    return families


def write_run_metrics(
    path: str | os.PathLike[str],
    summary: RunSummary,
    store: FeatureStore,
    watermarks: Mapping[tuple[str, str], datetime],
    now: datetime,
) -> None:
    """Write the metrics of the run ``summary`` describes to ``path`` (the job calls it last).

    Args:
        path: ``METRICS_TEXTFILE``.
        summary: The finished run.
        store: Its feature store (the registry gives Feast's watermark per view; when it cannot
            be read, freshness is left out).
        watermarks: Each ``(view, source)`` watermark of the job's state after the run.
        now: The moment ages are measured from.

    Raises:
        OSError: The file cannot be written.
    """
    feast_marks: dict[str, datetime | None] = {}
    try:
        for fv in store.registry.list_feature_views(store.project, allow_cache=False):
            end = fv.most_recent_end_time
            feast_marks[fv.name] = as_utc(end) if end else None
    except Exception as e:  # Feast raises many types for an unreadable registry
        logger.info("metrics without feature freshness: %s", redact(str(e)))
    failed = list(summary.kept_views)
    if summary.failed_view:
        failed.append(summary.failed_view)
    families = run_metrics(
        summary,
        project=store.project,
        now=now,
        watermarks=watermarks,
        feast_watermarks=feast_marks,
        failed_views=failed,
    )
    write_textfile(path, families)


def write_textfile(path: str | os.PathLike[str], families: list[MetricFamily]) -> None:
    """Write ``families`` to ``path`` atomically, counters added to the values ``path`` held.

    Raises:
        OSError: The directory is not writable.
    """
    target = Path(path)
    previous = _read_counters(target)
    for family in families:
        if family.kind != "counter":
            continue
        for labels in family.samples:
            family.samples[labels] += previous.pop((family.name, labels), 0.0)
    # Counter series this run did not touch (a view not selected) keep their value.
    by_name = {family.name: family for family in families}
    for (name, labels), value in previous.items():
        if name in by_name:
            by_name[name].samples[labels] = value
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(render(families))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)  # atomic: the collector reads the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def not_written(path: str | os.PathLike[str], error: BaseException) -> str:
    """The run line's warning when ``METRICS_TEXTFILE`` could not be written: the path, why, and
    the fix. The run's outcome and exit status stand (the metrics are a report, not the run)."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return (
        f"metrics not written to {path} (METRICS_TEXTFILE): {reason}; to fix it, make "
        f"{Path(path).parent} a directory the job's user can write (the node exporter's textfile "
        "directory) or point METRICS_TEXTFILE at a file in one (the run's outcome stands)"
    )


def render(families: list[MetricFamily]) -> str:
    """The Prometheus text exposition format of ``families``."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in sorted(family.samples.items()):
            lines.append(f"{family.name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _single(name: str, kind: str, help_text: str, value: float) -> MetricFamily:
    family = MetricFamily(name, kind, help_text)
    family.set(value)
    return family


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _read_counters(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The ``counter`` samples of an earlier file (empty when missing or unreadable)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    counters: set[str] = set()
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) == 4 and parts[3] == "counter":
                counters.add(parts[2])
            continue
        match = _SAMPLE.match(line)
        if not match or match["name"] not in counters:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        values[(match["name"], _parse_labels(match["labels"] or ""))] = value
    return values


def _parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', text)
    unescaped = [
        (k, v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")) for k, v in pairs
    ]
    return tuple(sorted(unescaped))
