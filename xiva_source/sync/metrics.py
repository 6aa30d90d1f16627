"""The sync worker's Prometheus metrics: a textfile beside the job's, and ``/metrics`` on a flag.

The series (docs/operations.md, "Real-time sync"):

- ``loyalty_sync_up`` (gauge): 1 while this process is the active worker, 0 as a standby;
- ``loyalty_sync_lag_seconds{source}`` (gauge): seconds since it was last caught up with
  ``xiva`` / ``dwh``;
- ``loyalty_sync_degraded{part}`` (gauge): 1 while ``xiva``, ``dwh`` or ``redis`` fails;
- ``loyalty_sync_changes_total``, ``loyalty_sync_events_total``, ``loyalty_sync_skipped_total``,
  ``loyalty_sync_dwh_rows_total``, ``loyalty_sync_errors_total{part}`` (counters).

The textfile is written with :func:`xiva_source.jobs.metrics.write_textfile` (atomic, counters
added to the file's values: each write passes the increments since the previous one), at
``<METRICS_TEXTFILE's directory>/<its stem>_sync.prom`` so the job's own file is never touched.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from xiva_source.jobs.metrics import MetricFamily, render, write_textfile
from xiva_source.sync.status import SOURCES, SyncCounters, SyncStatus

__all__ = ["MetricsServer", "SyncMetrics", "sync_textfile"]

_PARTS = ("xiva", "dwh", "redis", "segments")


def sync_textfile(job_textfile: Path) -> Path:
    """The worker's textfile beside the job's ``METRICS_TEXTFILE``."""
    return job_textfile.with_name(f"{job_textfile.stem}_sync.prom")


class SyncMetrics:
    """The worker's metric families; :meth:`write` to the textfile, :meth:`text` for HTTP.

    Args:
        textfile: Where to write (``None``: no file).
    """

    def __init__(self, textfile: Path | None) -> None:
        self.textfile = textfile
        self._written = SyncCounters()  # what the file holds already (increments are added)
        self._text = ""
        self._lock = threading.Lock()

    def families(
        self, status: SyncStatus, now: datetime, *, active: bool, counters: SyncCounters
    ) -> list[MetricFamily]:
        """The families for ``status`` (counters: the values to put in them)."""
        up = MetricFamily("loyalty_sync_up", "gauge", "1 while this process is the active worker")
        up.set(1 if active else 0)
        lag = MetricFamily(
            "loyalty_sync_lag_seconds", "gauge", "Seconds since the worker was caught up"
        )
        for source in SOURCES:
            value = status.lag(source, now)
            if value is not None:
                lag.set(value, source=source)
        degraded = MetricFamily("loyalty_sync_degraded", "gauge", "1 while this part fails")
        for part in ("xiva", "dwh", "redis"):
            degraded.set(1 if part in status.degraded else 0, part=part)
        out = [up, lag, degraded]
        for name, value, text in (
            ("changes", counters.customers, "Xiva changes followed online"),
            ("events", counters.events, "Membership events published"),
            ("skipped", counters.skipped, "Changed customers passed over (gone, malformed)"),
            ("dwh_rows", counters.dwh_rows, "DWH rows written by the follower"),
        ):
            family = MetricFamily(f"loyalty_sync_{name}_total", "counter", text)
            family.set(value)
            out.append(family)
        errors = MetricFamily("loyalty_sync_errors_total", "counter", "Failures per part")
        for part in _PARTS:
            errors.set(counters.errors.get(part, 0), part=part)
        out.append(errors)
        return out

    def update(
        self, status: SyncStatus, now: datetime, *, active: bool, write_file: bool = True
    ) -> None:
        """Refresh the HTTP text and write the textfile (increments since the last write).

        A standby passes ``write_file=False``: on one host the active worker's file is not
        overwritten by the standby's.

        Raises:
            OSError: The textfile's directory is not writable.
        """
        total = status.counters
        with self._lock:
            self._text = render(self.families(status, now, active=active, counters=total))
        if self.textfile is None or not write_file:
            return
        done = self._written
        delta = SyncCounters(
            customers=total.customers - done.customers,
            events=total.events - done.events,
            skipped=total.skipped - done.skipped,
            dwh_rows=total.dwh_rows - done.dwh_rows,
            errors={p: total.errors.get(p, 0) - done.errors.get(p, 0) for p in _PARTS},
        )
        write_textfile(self.textfile, self.families(status, now, active=active, counters=delta))
        self._written = replace(total, errors=dict(total.errors))

    def text(self) -> str:
        """The latest exposition text (for ``/metrics``)."""
        with self._lock:
            return self._text


class MetricsServer:
    """``GET /metrics`` on ``port`` (loopback unless ``host`` says otherwise), in a thread.

    Args:
        metrics: Whose text to serve.
        port: The TCP port (0: any free one; see :attr:`port`).
        host: The address to bind.
    """

    def __init__(self, metrics: SyncMetrics, port: int, host: str = "127.0.0.1") -> None:
        source = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = source.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sync-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
