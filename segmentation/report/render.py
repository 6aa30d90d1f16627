"""The report as one self-contained HTML page: sizes, size history, overlaps, group balance.

One file, nothing fetched: inline CSS, charts as inline SVG drawn here, and a small inline script
that checks every chart has drawn marks (``data-marks`` on each chart, ``data-ready`` on the
page). A Content-Security-Policy forbids every network load, so the page opens the same offline,
from a mail attachment or a file share.

Example:
    >>> data = build_report(engine)  # doctest: +SKIP
    >>> Path("segments.html").write_text(render_report(data))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

import numpy as np

from segmentation.report.data import ReportData, build_report

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine

__all__ = ["render_report", "write_report"]

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
_GROUP_COLORS = {"target": "#1f77b4", "holdout": "#9e9e9e", "global_control": "#555555"}
_ARM_COLORS = ("#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#17becf", "#e377c2", "#8c564b")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt_pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _svg(chart: str, width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" data-chart="{chart}" role="img" aria-label="{_e(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _sizes_svg(data: ReportData) -> str:
    ov = data.overlap
    label_w, bar_w, row_h = 220, 460, 26
    height = 10 + row_h * max(len(ov.segments), 1)
    body: list[str] = []
    for i, (name, size) in enumerate(ov.sizes.items()):
        y = 5 + i * row_h
        share = size / ov.population if ov.population else 0.0
        width = max(bar_w * share, 1.0 if size else 0.0)
        body.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{_e(name)}</text>'
            f'<rect class="track" x="{label_w}" y="{y + 4}" width="{bar_w}" height="18"/>'
        )
        if width:
            body.append(
                f'<rect class="mark" x="{label_w}" y="{y + 4}" width="{width:.2f}" height="18" '
                f'fill="{_PALETTE[i % len(_PALETTE)]}"><title>{_e(name)}: {size:,} of '
                f"{ov.population:,} ({_fmt_pct(size, ov.population)})</title></rect>"
            )
        body.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}">{size:,} '
            f"({_fmt_pct(size, ov.population)})</text>"
        )
    return _svg("sizes", label_w + bar_w + 150, height, body, "segment sizes")


def _parse_time(text: str) -> float | None:
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.timestamp()


def _ticks(top: int, count: int = 4) -> list[int]:
    step = max(1, -(-top // count))
    magnitude = 10 ** (len(str(step)) - 1)
    step = -(-step // magnitude) * magnitude
    return list(range(0, top + step, step))


def _history_svg(data: ReportData) -> str:
    series: list[tuple[str, list[tuple[float, int]]]] = []
    for name, entries in data.history.items():
        points = [
            (t, e.size) for e in reversed(entries) if (t := _parse_time(e.timestamp)) is not None
        ]
        if points:
            series.append((name, points))
    if not series:
        return (
            '<p class="empty">No refresh recorded yet: run <code>segmentation refresh</code> '
            "to start the size history.</p>"
        )
    left, right, top, bottom, width, height = 70, 20, 15, 45, 760, 300
    times = [t for _, pts in series for t, _ in pts]
    t0, t1 = min(times), max(times)
    if t1 == t0:
        t0, t1 = t0 - 3600, t1 + 3600
    ymax = max(1, max(s for _, pts in series for _, s in pts))
    ticks = _ticks(ymax)
    ytop = ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + plot_w * (t - t0) / (t1 - t0)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / ytop)

    body = [
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>',
    ]
    for v in ticks:
        body.append(
            f'<line class="grid" x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" '
            f'y2="{y(v):.1f}"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{v:,}</text>'
        )
    when = "%Y-%m-%d %H:%M:%S" if t1 - t0 < 600 else "%Y-%m-%d %H:%M"
    for t, anchor in ((t0, "start"), ((t0 + t1) / 2, "middle"), (t1, "end")):
        stamp = _dt.datetime.fromtimestamp(t, _dt.UTC).strftime(when)
        body.append(
            f'<text x="{x(t):.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}">{stamp}</text>'
        )
    legend: list[str] = []
    for i, (name, pts) in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        d = " ".join(
            f"{'M' if k == 0 else 'L'}{x(t):.1f},{y(s):.1f}" for k, (t, s) in enumerate(pts)
        )
        body.append(f'<path class="mark line" d="{d}" stroke="{color}"/>')
        for t, s in pts:
            when = _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")
            body.append(
                f'<circle class="mark" cx="{x(t):.1f}" cy="{y(s):.1f}" r="3" fill="{color}">'
                f"<title>{_e(name)} at {when}: {s:,}</title></circle>"
            )
        legend.append(f'<span class="key"><i style="background:{color}"></i>{_e(name)}</span>')
    svg = _svg("history", width, height, body, "segment sizes over time")
    return svg + '<div class="legend">' + "".join(legend) + "</div>"


def _heat_color(value: float) -> str:
    # From near-white to dark blue.
    lo, hi = (247, 251, 255), (8, 48, 107)
    v = 0.0 if np.isnan(value) else min(max(value, 0.0), 1.0)
    r, g, b = (round(a + (c - a) * v) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _overlap_svg(data: ReportData) -> str:
    ov = data.overlap
    n = len(ov.segments)
    if n == 0:
        return '<p class="empty">No segment.</p>'
    cell = max(22, min(64, 640 // n))
    longest = max(len(name) for name in ov.segments)
    label_w, head_h = 200, int(min(150, 24 + 6 * longest))  # room for the slanted names
    jac = ov.jaccard_matrix
    body: list[str] = []
    for i, name in enumerate(ov.segments):
        cy = head_h + i * cell
        cx = label_w + i * cell
        body.append(
            f'<text x="{label_w - 8}" y="{cy + cell / 2 + 4:.1f}" '
            f'text-anchor="end">{_e(name)}</text>'
            f'<text x="{cx + cell / 2 + 4:.1f}" y="{head_h - 8}" '
            f'transform="rotate(-45 {cx + cell / 2 + 4:.1f} {head_h - 8})">{_e(name)}</text>'
        )
        for j, other in enumerate(ov.segments):
            value = float(jac[i, j])
            both = int(ov.counts[i, j])
            shown = "n/a" if np.isnan(value) else f"{value:.3f}"
            x0, y0 = label_w + j * cell, head_h + i * cell
            body.append(
                f'<rect class="mark cell" x="{x0}" y="{y0}" width="{cell}" height="{cell}" '
                f'fill="{_heat_color(value)}"><title>{_e(name)} and {_e(other)}: {both:,} '
                f"customer(s) in both, Jaccard {shown}</title></rect>"
            )
            if cell >= 34:
                ink = "#ffffff" if not np.isnan(value) and value > 0.5 else "#222222"
                body.append(
                    f'<text class="count" x="{x0 + cell / 2:.1f}" y="{y0 + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" style="fill:{ink}">{both:,}</text>'
                )
    scale_y = head_h + n * cell + 20
    body.append(
        '<defs><linearGradient id="heat" x1="0" x2="1" y1="0" y2="0">'
        f'<stop offset="0" stop-color="{_heat_color(0.0)}"/>'
        f'<stop offset="1" stop-color="{_heat_color(1.0)}"/></linearGradient></defs>'
        f'<rect x="{label_w}" y="{scale_y}" width="200" height="12" fill="url(#heat)" '
        'stroke="#999"/>'
        f'<text x="{label_w}" y="{scale_y + 28}">Jaccard 0</text>'
        f'<text x="{label_w + 200}" y="{scale_y + 28}" text-anchor="end">1</text>'
    )
    width = label_w + n * cell + 120
    return _svg("overlap", width, scale_y + 40, body, "pairwise overlap of segments")


def _group_color(group: str, arms: list[str]) -> str:
    if group in _GROUP_COLORS:
        return _GROUP_COLORS[group]
    return _ARM_COLORS[arms.index(group) % len(_ARM_COLORS)] if group in arms else "#bbbbbb"


def _group_order(groups: set[str]) -> list[str]:
    fixed = ["target", "holdout", "global_control"]
    arms = sorted(g for g in groups if g not in fixed)
    return [g for g in ("target", *arms, "holdout", "global_control") if g in groups]


def _balance_svg(data: ReportData) -> str:
    label_w, bar_w, row_h = 220, 460, 26
    all_groups = {g for b in data.balance for g in b.counts}
    order = _group_order(all_groups)
    arms = [g for g in order if g not in _GROUP_COLORS]
    body: list[str] = []
    for i, bal in enumerate(data.balance):
        y = 5 + i * row_h
        body.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{_e(bal.segment)}</text>'
            f'<rect class="track" x="{label_w}" y="{y + 4}" width="{bar_w}" height="18"/>'
        )
        offset = 0.0
        for group in order:
            count = bal.counts.get(group, 0)
            if not count:
                continue
            w = bar_w * count / bal.total
            body.append(
                f'<rect class="mark" x="{label_w + offset:.2f}" y="{y + 4}" width="{w:.2f}" '
                f'height="18" fill="{_group_color(group, arms)}"><title>{_e(bal.segment)}, '
                f"{_e(group)}: {count:,} ({_fmt_pct(count, bal.total)})</title></rect>"
            )
            offset += w
        summary = f"{bal.total:,} eligible" if bal.total else "no eligible member"
        body.append(f'<text x="{label_w + bar_w + 8}" y="{y + 17}">{summary}</text>')
    height = 10 + row_h * max(len(data.balance), 1)
    svg = _svg("balance", label_w + bar_w + 160, height, body, "members per group")
    legend = "".join(
        f'<span class="key"><i style="background:{_group_color(g, arms)}"></i>{_e(g)}</span>'
        for g in order
    )
    return svg + '<div class="legend">' + legend + "</div>"


def _balance_table(data: ReportData) -> str:
    order = _group_order({g for b in data.balance for g in b.counts})
    head = "".join(f"<th>{_e(g)}</th>" for g in order)
    rows = []
    for bal in data.balance:
        cells = []
        for g in order:
            count = bal.counts.get(g, 0)
            expected = bal.expected.get(g)
            if not count and expected is None:  # a group this segment does not have
                cells.append('<td class="dim">-</td>')
                continue
            hint = f' <span class="dim">(asked {100 * expected:.1f}%)</span>' if expected else ""
            cells.append(f"<td>{count:,} <span class='dim'>{_fmt_pct(count, bal.total)}</span>"
                         f"{hint}</td>")  # fmt: skip
        rows.append(f"<tr><th>{_e(bal.segment)}</th><td>{bal.total:,}</td>{''.join(cells)}</tr>")
    return (
        f"<table><thead><tr><th>segment</th><th>eligible</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _pairs_table(data: ReportData) -> str:
    rows = [
        f"<tr><td>{_e(a)}</td><td>{_e(b)}</td><td>{both:,}</td>"
        f"<td>{'n/a' if jac is None else f'{jac:.3f}'}</td></tr>"
        for a, b, both, jac in data.overlap.pairs()
    ]
    if not rows:
        return ""
    return (
        "<details><summary>Every pair</summary><table><thead><tr><th>segment</th>"
        "<th>segment</th><th>in both</th><th>Jaccard</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""Nothing is loaded from anywhere: a chart that tried would show as a console error."""

_TEMPLATE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Segments of $project</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta, .dim { color: #666; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4rem .8rem; }
svg.chart { max-width: 100%; height: auto; display: block; margin: .6rem 0; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
svg .track { fill: #f0f0f0; }
svg .axis { stroke: #888; }
svg .grid { stroke: #e5e5e5; }
svg path.line { fill: none; stroke-width: 2; }
svg rect.cell { stroke: #fff; stroke-width: 1; }
svg rect.mark:hover, svg circle.mark:hover { opacity: .75; }
.legend { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; margin: .3rem 0 1rem; }
.key i { display: inline-block; width: .9rem; height: .9rem; margin-right: .35rem;
         vertical-align: -2px; border-radius: 2px; }
table { border-collapse: collapse; margin: .6rem 0; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid #eee; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.empty { color: #666; font-style: italic; }
</style>
</head>
<body>
<h1>Segments of <code>$project</code></h1>
<p class="meta">Computed $generated over a population of <strong>$population</strong> customer(s)
(every customer of the online store). Sizes count the customers whose rules all hold (eligible,
control groups included).</p>
$notes
<h2 id="sizes">Sizes</h2>
$sizes
<h2 id="history">Size history</h2>
<p class="meta">Sizes stored by each <code>segmentation refresh</code>.</p>
$history
<h2 id="overlap">Overlap</h2>
<p class="meta">Customers in both segments (cell), coloured by the Jaccard index
|A&nbsp;&cap;&nbsp;B|&nbsp;/&nbsp;|A&nbsp;&cup;&nbsp;B|.</p>
$overlap
$pairs
<h2 id="balance">Holdout and split balance</h2>
<p class="meta">Eligible members of each segment per group (holdout, split arms, target, global
control), against the fractions the segment asks for.</p>
$balance
$balance_table
<script>
(function () {
  "use strict";
  var charts = document.querySelectorAll("svg.chart");
  var drawn = 0;
  charts.forEach(function (chart) {
    var marks = 0;
    chart.querySelectorAll(".mark").forEach(function (mark) {
      var box = mark.getBBox();
      if (box.width > 0 || box.height > 0) { marks += 1; }
    });
    chart.setAttribute("data-marks", String(marks));
    if (marks > 0) { drawn += 1; }
  });
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-drawn", String(drawn));
  document.body.setAttribute("data-ready", "1");
})();
</script>
</body>
</html>
""")


def render_report(data: ReportData) -> str:
    """The report as one self-contained HTML page (no network access: inline CSS, SVG, script).

    Args:
        data: What :func:`build_report` computed.
    """
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    return _TEMPLATE.substitute(
        csp=_CSP,
        project=_e(data.project),
        generated=_e(data.generated),
        population=f"{data.overlap.population:,}",
        notes=notes,
        sizes=_sizes_svg(data),
        history=_history_svg(data),
        overlap=_overlap_svg(data),
        pairs=_pairs_table(data),
        balance=_balance_svg(data),
        balance_table=_balance_table(data),
    )


def write_report(
    engine: SegmentEngine,
    path: str | os.PathLike[str],
    segments: Sequence[str] | None = None,
    *,
    global_control: float = 0.0,
    now: _dt.datetime | None = None,
) -> ReportData:
    """Compute the report and write it to ``path`` (one HTML file).

    Returns:
        The data shown.
    """
    data = build_report(engine, segments, global_control=global_control, now=now)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(data), encoding="utf-8")
    return data
