"""The report as one self-contained HTML page, read like a dashboard: a card per segment.

A card says what the segment is for (its description), who is in it (the rules in words,
:mod:`segmentation.report.words`), how big it is now and how its size moved over the stored
refreshes (a sparkline), and how its members are split into groups (holdout, arms, global
control) against what the definition asks for. Above the cards: the sizes at a glance and the
size history of the largest segments; below: the most overlapping pairs in plain words, and a
heat map while there are few segments.

One file, nothing fetched and nothing run: inline CSS, charts as inline SVG drawn here, no script.
The Content-Security-Policy (``default-src 'none'``, inline styles only) forbids every load and
every script, so the page opens the same offline, from a mail attachment or a file share, and
prints (a ``@media print`` style). Every chart is an ``svg.chart`` whose drawn marks have the class
``mark`` (the test counts them in a browser).

What it holds is bounded, whatever the number of segments: at most :data:`MAX_BARS` bars,
:data:`MAX_HISTORY_SERIES` lines, a heat map up to :data:`MAX_HEATMAP_SEGMENTS` segments, the
cards :func:`~segmentation.report.data.build_report` chose, :data:`SPARKLINE_POINTS` points per
sparkline, one short line per other segment.

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

from segmentation.groups import GLOBAL_CONTROL, HOLDOUT, TARGET
from segmentation.memberships import HistoryEntry
from segmentation.overlap import PairOverlap
from segmentation.pairs import DEFAULT_TOP_PAIRS
from segmentation.report.data import (
    HISTORY_LIMIT,
    MAX_CARDS,
    GroupBalance,
    ReportData,
    build_report,
)
from segmentation.report.words import groups_in_words, pair_in_words, rules_in_words

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine
    from segmentation.segment import Segment

__all__ = [
    "MAX_BARS",
    "MAX_HEATMAP_SEGMENTS",
    "MAX_HISTORY_SERIES",
    "SPARKLINE_POINTS",
    "render_report",
    "write_report",
]

MAX_BARS = 30
"""Segments in the sizes-at-a-glance chart (the largest)."""
MAX_HISTORY_SERIES = 8
"""Lines in the size-history chart (the largest carded segments with two refreshes or more)."""
MAX_HEATMAP_SEGMENTS = 30
"""The overlap heat map is drawn up to this many segments (the pairs in words always are)."""
SPARKLINE_POINTS = 120
"""Points of a card's sparkline (a longer history is sampled evenly, first and last kept)."""

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
)
_GROUP_COLORS = {TARGET: "#1f77b4", HOLDOUT: "#9e9e9e", GLOBAL_CONTROL: "#555555"}
_ARM_COLORS = ("#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#17becf", "#e377c2", "#8c564b")
_GROUP_LABELS = {TARGET: "targeted", HOLDOUT: "held out", GLOBAL_CONTROL: "global control"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _svg(chart: str, width: int, height: int, body: list[str], label: str, cls: str = "") -> str:
    """An ``svg.chart`` scaled to its box (``viewBox``; the CSS caps its width at 100%)."""
    return (
        f'<svg class="chart {cls}" data-chart="{chart}" role="img" aria-label="{_e(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_e(label)}</title>" + "".join(body) + "</svg>"
    )


def _parse_time(text: str) -> float | None:
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.timestamp()


def _when(t: float, span: float = 0.0) -> str:
    """A moment as a person reads it, as precise as the span of the data needs."""
    moment = _dt.datetime.fromtimestamp(t, _dt.UTC)
    if span and span < 600:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def _range(t0: float, t1: float) -> str:
    """``2026-01-01 06:00 to 2026-01-05 06:00``, the second date left out when it is the same."""
    first, last = _when(t0), _when(t1)
    return f"{first} to {last[11:] if last[:10] == first[:10] else last}"


def _axis_label(t: float, span: float) -> str:
    moment = _dt.datetime.fromtimestamp(t, _dt.UTC)
    if span < 600:
        return moment.strftime("%H:%M:%S")
    if span < 2 * 86400:
        return moment.strftime("%d %b %H:%M")
    if span < 400 * 86400:
        return moment.strftime("%d %b")
    return moment.strftime("%b %Y")


def _points(entries: Sequence[HistoryEntry]) -> list[tuple[float, int]]:
    """``(time, size)`` oldest first (the store keeps them newest first)."""
    return [(t, e.size) for e in reversed(entries) if (t := _parse_time(e.timestamp)) is not None]


def _sample(points: list[tuple[float, int]], most: int) -> list[tuple[float, int]]:
    if len(points) <= most:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, most).round().astype(int))
    return [points[int(i)] for i in keep]


def _ticks(top: int, count: int = 4) -> list[int]:
    step = max(1, -(-top // count))
    magnitude = 10 ** (len(str(step)) - 1)
    step = -(-step // magnitude) * magnitude
    return list(range(0, top + step, step))


def _short(n: int) -> str:
    if n >= 10_000_000:
        return f"{n / 1_000_000:.0f}M"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 100_000:
        return f"{n / 1_000:.0f}k"
    return f"{n:,}"


# ----------------------------------------------------------------------------- overview charts


def _sizes_chart(data: ReportData) -> str:
    ov = data.overlap
    if not ov.segments:
        return '<p class="empty">No segment.</p>'
    ranked = sorted(ov.sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_BARS]
    label_w, bar_w, row_h, value_w = 230, 520, 24, 150
    body: list[str] = []
    for i, (name, size) in enumerate(ranked):
        y = 4 + i * row_h
        width = bar_w * size / ov.population if ov.population else 0.0
        shown = name if len(name) <= 30 else name[:29] + "…"
        body.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(shown)}</text>'
            f'<rect class="track" x="{label_w}" y="{y + 3}" width="{bar_w}" height="16"/>'
        )
        if size:
            body.append(
                f'<rect class="mark" x="{label_w}" y="{y + 3}" width="{max(width, 1.5):.2f}" '
                f'height="16" fill="{_PALETTE[0]}"><title>{_e(name)}: {size:,} of '
                f"{ov.population:,} customers ({_pct(size, ov.population)})</title></rect>"
            )
        body.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}">{size:,} '
            f"({_pct(size, ov.population)})</text>"
        )
    height = 8 + row_h * len(ranked)
    svg = _svg("sizes", label_w + bar_w + value_w, height, body, "segment sizes", "wide")
    if len(ov.segments) > len(ranked):
        note = (
            f'<p class="meta">The {len(ranked)} largest of {len(ov.segments):,} segments; every '
            "segment's size is on its card or in the list below.</p>"
        )
        return note + svg
    return svg


def _history_chart(data: ReportData) -> str:
    series = []
    for name, entries in data.history.items():
        pts = _points(entries)
        if len({t for t, _ in pts}) >= 2:
            series.append((name, pts))
    if not series:
        refreshed = any(data.history.values())
        if refreshed:
            return (
                '<p class="empty">One refresh so far: each card shows its size then. The chart '
                "appears after the next <code>segmentation refresh</code>.</p>"
            )
        return (
            '<p class="empty">No refresh recorded yet: run <code>segmentation refresh</code> '
            "(e.g. daily, from cron) to start the size history.</p>"
        )
    sizes = data.overlap.sizes
    series.sort(key=lambda s: (-sizes.get(s[0], 0), s[0]))
    note = ""
    if len(series) > MAX_HISTORY_SERIES:
        note = (
            f'<p class="meta">The {MAX_HISTORY_SERIES} largest of {len(series):,} segments with '
            "a history; each card has its own.</p>"
        )
        series = series[:MAX_HISTORY_SERIES]
    series = [(name, _sample(pts, 400)) for name, pts in series]
    left, right, top, bottom, width, height = 64, 24, 14, 40, 1000, 300
    times = [t for _, pts in series for t, _ in pts]
    t0, t1 = min(times), max(times)
    span = t1 - t0
    ymax = max(1, max(s for _, pts in series for _, s in pts))
    ticks = _ticks(ymax)
    ytop = ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + plot_w * (t - t0) / span

    def y(v: float) -> float:
        return top + plot_h * (1 - v / ytop)

    body = [
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>'
    ]
    for v in ticks:
        body.append(
            f'<line class="grid" x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" '
            f'y2="{y(v):.1f}"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{_short(v)}</text>'
        )
    for k in range(5):
        t = t0 + span * k / 4
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        body.append(
            f'<line class="grid" x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + plot_h}"/>'
            f'<text x="{x(t):.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}">'
            f"{_axis_label(t, span)}</text>"
        )
    legend: list[str] = []
    for i, (name, pts) in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        d = " ".join(
            f"{'M' if k == 0 else 'L'}{x(t):.1f},{y(s):.1f}" for k, (t, s) in enumerate(pts)
        )
        body.append(f'<path class="mark line" d="{d}" stroke="{color}"/>')
        dots = pts if len(pts) <= 40 else pts[-1:]  # many refreshes: the line says it
        for t, s in dots:
            body.append(
                f'<circle class="mark" cx="{x(t):.1f}" cy="{y(s):.1f}" r="3.5" fill="{color}">'
                f"<title>{_e(name)} on {_when(t, span)}: {s:,}</title></circle>"
            )
        legend.append(f'<span class="key"><i style="background:{color}"></i>{_e(name)}</span>')
    svg = _svg("history", width, height, body, "segment sizes over time", "wide")
    first, last = _when(t0, span), _when(t1, span)
    caption = f'<p class="meta">Sizes stored by each refresh, {first} to {last} (UTC).</p>'
    return note + caption + svg + '<div class="legend">' + "".join(legend) + "</div>"


# ----------------------------------------------------------------------------- the cards


def _sparkline(name: str, pts: list[tuple[float, int]]) -> str:
    pts = _sample(pts, SPARKLINE_POINTS)
    width, height, pad = 320, 56, 5
    t0, t1 = pts[0][0], pts[-1][0]
    lo, hi = min(s for _, s in pts), max(s for _, s in pts)
    by_index = t1 == t0

    def x(k: int, t: float) -> float:
        share = k / (len(pts) - 1) if by_index else (t - t0) / (t1 - t0)
        return pad + (width - 2 * pad) * share

    def y(v: int) -> float:
        if hi == lo:
            return height / 2
        return pad + (height - 2 * pad) * (1 - (v - lo) / (hi - lo))

    coords = [(x(k, t), y(s)) for k, (t, s) in enumerate(pts)]
    d = " ".join(f"{'M' if k == 0 else 'L'}{cx:.1f},{cy:.1f}" for k, (cx, cy) in enumerate(coords))
    area = f"{d} L{coords[-1][0]:.1f},{height} L{coords[0][0]:.1f},{height} Z"
    (lx, ly), last = coords[-1], pts[-1]
    body = [
        f'<path class="area" d="{area}"/>',
        f'<path class="mark line" d="{d}" stroke="{_PALETTE[0]}"/>',
        f'<circle class="mark" cx="{lx:.1f}" cy="{ly:.1f}" r="3.5" fill="{_PALETTE[0]}">'
        f"<title>{_e(name)} on {_when(last[0])}: {last[1]:,}</title></circle>",
    ]
    return _svg("trend", width, height, body, f"{name}: size at each refresh", "spark")


def _trend(name: str, size_now: int, entries: Sequence[HistoryEntry]) -> str:
    pts = _points(entries)
    if not pts:
        return (
            '<p class="dim">No refresh stored yet: <code>segmentation refresh</code> starts '
            "its history.</p>"
        )
    if len(pts) == 1:
        t, s = pts[0]
        return f'<p class="dim">First refresh on {_when(t)} UTC: {s:,} members.</p>'
    (t0, first), (t1, last) = pts[0], pts[-1]
    change = last - first
    lo, hi = min(s for _, s in pts), max(s for _, s in pts)
    when = f"over {len(pts):,} refreshes, {_range(t0, t1)} UTC"
    if lo == hi:
        caption = (
            f'<p class="trend-text"><span class="flat">Unchanged</span> at {last:,} {when}</p>'
        )
    else:
        sign, arrow = ("+", "up") if change > 0 else ("-", "down") if change < 0 else ("±", "flat")
        rel = f" ({sign}{abs(change) / first:.1%})" if first and change else ""
        caption = (
            f'<p class="trend-text"><span class="{arrow}">{sign}{abs(change):,}{rel}</span> '
            f"{when}: {first:,} → {last:,} (lowest {lo:,}, highest {hi:,})</p>"
        )
    return _sparkline(name, pts) + caption


def _group_color(group: str, arms: list[str]) -> str:
    if group in _GROUP_COLORS:
        return _GROUP_COLORS[group]
    return _ARM_COLORS[arms.index(group) % len(_ARM_COLORS)] if group in arms else "#bbbbbb"


def _group_order(groups: set[str]) -> list[str]:
    fixed = [TARGET, HOLDOUT, GLOBAL_CONTROL]
    arms = sorted(g for g in groups if g not in fixed)
    return [g for g in (TARGET, *arms, HOLDOUT, GLOBAL_CONTROL) if g in groups]


def _groups(bal: GroupBalance, seg: Segment | None, global_control: float) -> str:
    sentence = (
        f"<p>{_e(groups_in_words(seg, global_control))}</p>"
        if seg is not None
        else ""  # a ReportData built by hand may lack the definitions
    )
    order = _group_order(set(bal.counts) | set(bal.expected))
    if not bal.total:
        return sentence + '<p class="dim">No eligible customer: no group to show.</p>'
    if order == [TARGET]:
        return sentence
    arms = [g for g in order if g not in _GROUP_COLORS]
    width, height = 320, 18
    body: list[str] = []
    offset = 0.0
    for group in order:
        count = bal.counts.get(group, 0)
        if not count:
            continue
        w = width * count / bal.total
        body.append(
            f'<rect class="mark" x="{offset:.2f}" y="0" width="{w:.2f}" height="{height}" '
            f'fill="{_group_color(group, arms)}"><title>{_e(group)}: {count:,} '
            f"({_pct(count, bal.total)})</title></rect>"
        )
        offset += w
    bar = _svg("groups", width, height, body, f"{bal.segment}: members per group", "bar")
    rows = []
    for group in order:
        count = bal.counts.get(group, 0)
        asked = bal.expected.get(group)
        label = _GROUP_LABELS.get(group, f"arm {group}")
        rows.append(
            f'<tr><td><i class="swatch" style="background:{_group_color(group, arms)}"></i>'
            f"{_e(label)}</td><td>{count:,}</td><td>{_pct(count, bal.total)}</td>"
            f"<td>{'-' if asked is None else f'{100 * asked:.1f}%'}</td></tr>"
        )
    table = (
        '<table class="groups"><thead><tr><th>group</th><th>members</th><th>share</th>'
        f"<th>asked</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return sentence + bar + table


def _rules(seg: Segment | None) -> str:
    if seg is None:
        return '<p class="dim">Definition not given.</p>'
    items = rules_in_words(seg)
    lead = "A customer is in it when" + (" all of these hold:" if len(items) > 1 else ":")
    lis = "".join(
        f"<li>{f'<span class=rname>{_e(name)}</span> ' if name else ''}{_e(words)}</li>"
        for name, words in items
    )
    return f'<p class="lead">{lead}</p><ul class="rules">{lis}</ul>'


def _card(data: ReportData, bal: GroupBalance) -> str:
    name = bal.segment
    seg = data.definitions.get(name)
    size = data.overlap.sizes.get(name, 0)
    pop = data.overlap.population
    description = (
        f'<p class="desc">{_e(seg.description)}</p>'
        if seg is not None and seg.description
        else '<p class="desc dim">No description (add one to the segment file).</p>'
    )
    meter = ""
    if size and pop:
        meter = _svg(
            "share",
            200,
            8,
            [
                '<rect class="track" x="0" y="0" width="200" height="8" rx="4"/>',
                f'<rect class="mark" x="0" y="0" width="{max(200 * size / pop, 2):.2f}" '
                f'height="8" rx="4" fill="{_PALETTE[0]}"><title>{size:,} of {pop:,}'
                "</title></rect>",
            ],
            f"{name}: share of customers",
            "meter",
        )
    return (
        f'<article class="card" id="segment-{_e(name)}">'
        f'<header><h3>{_e(name)}</h3><div class="size"><strong>{size:,}</strong>'
        f"<span>{_pct(size, pop)} of {pop:,} customers</span>{meter}</div></header>"
        f"{description}"
        f"<h4>Who is in it</h4>{_rules(seg)}"
        f"<h4>Size over time</h4>{_trend(name, size, data.history.get(name, []))}"
        f"<h4>Groups</h4>{_groups(bal, seg, data.global_control)}"
        "</article>"
    )


def _others(data: ReportData) -> str:
    carded = {b.segment for b in data.balance}
    rest = [n for n in data.overlap.segments if n not in carded]
    if not rest:
        return ""
    sizes, pop = data.overlap.sizes, data.overlap.population
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{sizes[n]:,}</td><td>{_pct(sizes[n], pop)}</td></tr>"
        for n in rest
    )
    return (
        f'<h2 id="others">The other {len(rest):,} segments</h2>'
        '<p class="meta">Size now; name segments on the command line to see them as cards.</p>'
        '<table class="others"><thead><tr><th>segment</th><th>members</th><th>share</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


# ----------------------------------------------------------------------------- the overlap


def _pair_item(pair: PairOverlap) -> str:
    if pair.both == 0:
        return f"<li><b>{_e(pair.a)}</b> and <b>{_e(pair.b)}</b> share no customer.</li>"
    small, ss, large, ls = pair.a, pair.size_a, pair.b, pair.size_b
    if pair.size_b < pair.size_a:
        small, ss, large, ls = large, ls, small, ss
    share = pair.both / ss
    bar = (
        f'<span class="pbar"><span style="width:{100 * share:.1f}%"></span></span>'
        f'<span class="pct">{100 * share:.0f}%</span>'
    )
    title = _e(pair_in_words(pair))
    return (
        f'<li title="{title}">{bar}<span><b>{pair.both:,}</b> of the {ss:,} members of '
        f"<b>{_e(small)}</b> are also in <b>{_e(large)}</b>; that is "
        f"{_pct(pair.both, ls)} of {_e(large)}'s {ls:,}.</span></li>"
    )


def _pairs(data: ReportData) -> str:
    ov = data.overlap
    if ov.pair_count == 0:
        return '<p class="empty">One segment: nothing to compare.</p>'
    pairs = data.top_pairs()
    shared = [p for p in pairs if p.both]
    if not shared:
        return '<p class="empty">No two segments share a customer.</p>'
    intro = (
        f"The {len(shared)} pairs of segments that overlap most"
        if len(shared) < ov.pair_count
        else "Every pair of segments"
    ) + (f", of {ov.pair_count:,} pairs" if len(shared) < ov.pair_count else "")
    rest = ov.pair_count - len(shared)
    tail = (
        f'<p class="meta">{rest:,} other pair(s) overlap less or not at all '
        "(<code>segmentation overlap --top K</code> lists more).</p>"
        if rest and len(shared) == len(pairs) and len(pairs) < ov.pair_count
        else ""
    )
    return (
        f'<p class="meta">{intro}, ranked by shared customers over customers in either segment. '
        "Customers in both segments may get both campaigns.</p>"
        f'<ol class="pairs">{"".join(_pair_item(p) for p in shared)}</ol>{tail}'
    )


def _heat_color(value: float) -> str:
    # From near-white to dark blue.
    lo, hi = (247, 251, 255), (8, 48, 107)
    v = min(max(value, 0.0), 1.0)
    r, g, b = (round(a + (c - a) * v) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _heatmap(data: ReportData) -> str:
    ov = data.overlap
    n = len(ov.segments)
    if n < 2:
        return ""
    if n > MAX_HEATMAP_SEGMENTS:
        return (
            f'<p class="meta">The overlap map is drawn for up to {MAX_HEATMAP_SEGMENTS} '
            f"segments; this report has {n:,}. Name up to {MAX_HEATMAP_SEGMENTS} segments "
            "(<code>segmentation report FILE.html SEGMENT ...</code>) to see it.</p>"
        )
    cell = max(26, min(56, 720 // n))
    longest = max(len(name) for name in ov.segments)
    label_w = min(220, 20 + 7 * longest)
    head_h = int(min(160, 24 + 5.2 * longest))
    sizes = np.diag(ov.counts).astype(np.float64)
    body: list[str] = []
    for i, name in enumerate(ov.segments):
        cy, cx = head_h + i * cell, label_w + i * cell
        shown = name if len(name) <= 30 else name[:29] + "…"
        body.append(
            f'<text x="{label_w - 8}" y="{cy + cell / 2 + 4:.1f}" '
            f'text-anchor="end">{_e(shown)}</text>'
            f'<text x="{cx + cell / 2 + 4:.1f}" y="{head_h - 8}" '
            f'transform="rotate(-45 {cx + cell / 2 + 4:.1f} {head_h - 8})">{_e(shown)}</text>'
        )
        for j, other in enumerate(ov.segments):
            both = int(ov.counts[i, j])
            share = both / sizes[i] if sizes[i] else 0.0
            x0, y0 = label_w + j * cell, head_h + i * cell
            what = (
                f"{name}: all {both:,} members"
                if i == j
                else f"{both:,} of the {int(sizes[i]):,} members of {name} are also in {other}"
            )
            body.append(
                f'<rect class="mark cell" x="{x0}" y="{y0}" width="{cell}" height="{cell}" '
                f'fill="{_heat_color(share) if i != j else "#e8e8e8"}"><title>{_e(what)} '
                f"({_pct(both, sizes[i])})</title></rect>"
            )
            if cell >= 34 and i != j:
                ink = "#ffffff" if share > 0.5 else "#222222"
                body.append(
                    f'<text class="count" x="{x0 + cell / 2:.1f}" y="{y0 + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" style="fill:{ink}">{100 * share:.0f}%</text>'
                )
    width = label_w + n * cell + 60
    svg = _svg("overlap", width, head_h + n * cell + 10, body, "overlap of segments", "heat")
    return (
        '<p class="meta">Each row: the share of that segment\'s members who are also in the '
        "column's segment (darker: more shared).</p>" + svg
    )


# ----------------------------------------------------------------------------- the page


_CSP = "default-src 'none'; style-src 'unsafe-inline'"
"""Nothing is loaded from anywhere and no script runs: a chart that tried would be refused."""

_TEMPLATE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Segments of $project</title>
<style>
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       background: #f4f5f7; margin: 0; }
main { max-width: 1840px; margin: 0 auto; padding: 1.2rem 2rem 3rem; }
h1 { font-size: 1.6rem; margin: .2rem 0; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; }
h3 { font-size: 1.1rem; margin: 0; overflow-wrap: anywhere; }
h4 { font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; color: #667;
     margin: .9rem 0 .3rem; }
code { font-size: .92em; background: #eef; padding: 0 .2em; border-radius: 3px; }
.meta, .dim { color: #666; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4rem .8rem;
        margin: .4rem 0; }
.empty { color: #666; font-style: italic; }
.tiles { display: flex; flex-wrap: wrap; gap: .8rem; margin: .8rem 0; }
.tile { background: #fff; border-radius: 8px; padding: .6rem 1rem; min-width: 10rem;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.tile strong { display: block; font-size: 1.4rem; }
.tile span { color: #666; font-size: .85rem; }
.panel { background: #fff; border-radius: 8px; padding: .8rem 1.2rem;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.overview { display: grid; gap: 0 1rem;
            grid-template-columns: repeat(auto-fit, minmax(min(100%, 780px), 1fr)); }
.overview section { min-width: 0; }
svg.wide { width: 100%; max-width: 1000px; }
.cards { display: grid; gap: 1rem;
         grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); }
.card { background: #fff; border-radius: 8px; padding: 1rem 1.2rem; min-width: 0;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); border-top: 4px solid #1f77b4; }
.card header { display: flex; justify-content: space-between; align-items: flex-start;
               gap: 1rem; flex-wrap: wrap; }
.card .size { text-align: right; }
.card .size strong { font-size: 1.6rem; display: block; line-height: 1.1; }
.card .size span { color: #666; font-size: .85rem; display: block; }
.desc { margin: .5rem 0 0; overflow-wrap: anywhere; }
.lead { margin: 0; }
ul.rules { margin: .2rem 0; padding-left: 1.2rem; overflow-wrap: anywhere; }
ul.rules li { margin: .15rem 0; }
.rname { font-size: .78rem; color: #555; background: #eef1f5; border-radius: 3px;
         padding: 0 .3rem; margin-right: .2rem; }
.trend-text { margin: .2rem 0 0; color: #444; }
.up { color: #1b7f3b; font-weight: 600; }
.down { color: #b3261e; font-weight: 600; }
.flat { color: #666; font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.spark { width: 100%; max-width: 420px; }
svg.bar { width: 100%; max-width: 420px; margin: .3rem 0; }
svg.meter { width: 12rem; margin: .3rem 0 0 auto; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
svg .track { fill: #eceef1; }
svg .axis { stroke: #888; }
svg .grid { stroke: #ececec; }
svg .area { fill: #1f77b4; opacity: .08; }
svg path.line { fill: none; stroke-width: 2; }
svg rect.cell { stroke: #fff; stroke-width: 1; }
.legend { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; margin: .3rem 0 .4rem; }
.key { overflow-wrap: anywhere; }
.key i, .swatch { display: inline-block; width: .8rem; height: .8rem; margin-right: .35rem;
                  vertical-align: -1px; border-radius: 2px; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; overflow-wrap: anywhere; }
table.groups { width: 100%; max-width: 420px; font-size: .9rem; }
table.groups td { white-space: nowrap; }
table.others { background: #fff; }
ol.pairs { padding-left: 1.6rem; margin: .4rem 0; }
ol.pairs li { margin: .35rem 0; overflow-wrap: anywhere; }
.pbar { display: inline-block; width: 5rem; height: .6rem; background: #eceef1;
        border-radius: 3px; margin-right: .4rem; vertical-align: 1px; overflow: hidden; }
.pbar span { display: block; height: 100%; background: #08306b; }
.pct { display: inline-block; width: 2.8rem; color: #444; font-variant-numeric: tabular-nums; }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  .card, .panel, .tile { box-shadow: none; border: 1px solid #ccc; break-inside: avoid; }
  .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  h2 { break-after: avoid; }
  svg .area { opacity: .15; }
}
</style>
</head>
<body>
<main>
<h1>Segments of <code>$project</code></h1>
<p class="meta">Computed $generated UTC over every customer of the online store. A segment's
size counts the customers whose rules all hold, control groups included.</p>
<div class="tiles">$tiles</div>
$notes
<div class="overview">
<section><h2 id="sizes">Sizes at a glance</h2><div class="panel">$sizes</div></section>
<section><h2 id="history">Size over time</h2><div class="panel">$history</div></section>
</div>
<h2 id="segments">Segments</h2>
<div class="cards">$cards</div>
$others
<h2 id="overlap">Who is in several segments</h2>
<div class="panel">$pairs$heatmap</div>
</main>
</body>
</html>
""")


def _generated(text: str) -> str:
    t = _parse_time(text)
    return text if t is None else _when(t)


def _tiles(data: ReportData) -> str:
    ov = data.overlap
    stamps = [
        t
        for entries in data.history.values()
        for e in entries[:1]
        if (t := _parse_time(e.timestamp))
    ]
    last = f"{_when(max(stamps))}" if stamps else "never"
    tiles = [
        (f"{ov.population:,}", "customers"),
        (f"{len(ov.segments):,}", "segments"),
        (last, "last refresh (UTC)"),
    ]
    if data.global_control:
        tiles.append((f"{100 * data.global_control:g}%", "global control group"))
    return "".join(
        f'<div class="tile"><strong>{_e(v)}</strong><span>{k}</span></div>' for v, k in tiles
    )


def render_report(data: ReportData) -> str:
    """The report as one self-contained HTML page (no network access, no script).

    Args:
        data: What :func:`build_report` computed.

    Returns:
        The page; its size is bounded by the cards, :data:`MAX_BARS`, the pairs listed and a
        line per other segment, whatever the number of segments.
    """
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    cards = "".join(_card(data, bal) for bal in data.balance)
    return _TEMPLATE.substitute(
        csp=_CSP,
        project=_e(data.project),
        generated=_e(_generated(data.generated)),
        tiles=_tiles(data),
        notes=notes,
        sizes=_sizes_chart(data),
        history=_history_chart(data),
        cards=cards or '<p class="empty">No segment.</p>',
        others=_others(data),
        pairs=_pairs(data),
        heatmap=_heatmap(data),
    )


def write_report(
    engine: SegmentEngine,
    path: str | os.PathLike[str],
    segments: Sequence[str] | None = None,
    *,
    global_control: float = 0.0,
    top: int = DEFAULT_TOP_PAIRS,
    cards: int = MAX_CARDS,
    history_limit: int = HISTORY_LIMIT,
    now: _dt.datetime | None = None,
) -> ReportData:
    """Compute the report and write it to ``path`` (one HTML file).

    Args:
        engine: The engine.
        path: The HTML file.
        segments: Segment names (default: all).
        global_control: The global control fraction (``SEGMENTS_GLOBAL_CONTROL``).
        top: The most overlapping pairs to list.
        cards: Segments shown as a card (the first ones).
        history_limit: Refreshes read per carded segment.
        now: Reference time for staleness, and the report's time.

    Returns:
        The data shown.

    Raises:
        SegmentationError: ``top`` is over :data:`~segmentation.pairs.MAX_LISTED_PAIRS`.
    """
    data = build_report(
        engine,
        segments,
        global_control=global_control,
        history_limit=history_limit,
        top=top,
        cards=cards,
        now=now,
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(data), encoding="utf-8")
    return data
