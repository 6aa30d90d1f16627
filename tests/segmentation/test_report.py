"""The HTML report: its data against plain Python, and the page checked in headless Chromium
(Debian's ``chromium``; ``.ci/run`` installs it) at 1,280 and 1,920 pixels wide: no horizontal
scroll, every chart drew marks, no console message; and bounded for 2,000 segments."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segmentation import Segment, SegmentationError, SegmentEngine
from segmentation.memberships import HistoryEntry
from segmentation.overlap import Overlap, overlap_counts
from segmentation.pairs import MAX_LISTED_PAIRS
from segmentation.report import (
    MAX_BARS,
    MAX_CARDS,
    GroupBalance,
    ReportData,
    render_report,
    write_report,
)
from tests.support.segmentation import look
from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main as main

SEGMENTS = [
    Segment(
        "rp_paris", [{"==": [{"var": "city"}, "Paris"]}], "Paris <b>customers</b>", holdout=0.2
    ),
    Segment(
        "rp_rich",
        [{">": [{"var": "total_revenue"}, 1000]}],
        holdout=0.1,
        splits={"A": 0.5, "B": 0.5},
    ),
    Segment("rp_young", [{"<": [{"var": "age"}, 40]}]),
]
GLOBAL_CONTROL = 0.1
WIDTHS = (1280, 1920)

# The checker: a page of the test's own frames the report at a given width and, once it has
# loaded, measures it. The report itself runs no script (its CSP allows none).
_HARNESS = """<!doctype html><html><body style="margin:0">
<iframe id="report" src="REPORT" style="width:WIDTHpx;height:900px;border:0"></iframe>
<script>
window.addEventListener("load", function () {
  var frame = document.getElementById("report"), doc = frame.contentDocument, charts = {};
  doc.querySelectorAll("svg.chart").forEach(function (chart, i) {
    var name = chart.getAttribute("data-chart") + "#" + i, marks = 0;
    chart.querySelectorAll(".mark").forEach(function (mark) {
      var box = mark.getBBox();
      if (box.width > 0 || box.height > 0) { marks += 1; }
    });
    charts[name] = marks;
  });
  document.body.setAttribute("data-result", JSON.stringify({
    scrollWidth: doc.documentElement.scrollWidth,
    clientWidth: doc.documentElement.clientWidth,
    innerWidth: frame.contentWindow.innerWidth,
    scripts: doc.scripts.length,
    charts: charts
  }));
});
</script></body></html>
"""


def in_browser(
    page: Path, width: int, profile: Path, chromium: str
) -> tuple[dict[str, Any], list[str]]:
    """The report framed ``width`` pixels wide in headless Chromium: its measures (widths,
    marks drawn per chart) and the console messages Chromium logged."""
    harness = page.with_name(f"{page.stem}-at-{width}.html")
    harness.write_text(
        _HARNESS.replace("REPORT", page.name).replace("WIDTH", str(width)), encoding="utf-8"
    )
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests run as root in the CI container
            "--disable-gpu",
            "--no-first-run",
            "--allow-file-access-from-files",  # the harness reads the framed report's DOM
            f"--window-size={width + 100},1000",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            harness.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    found = re.search(r'data-result="([^"]*)"', done.stdout)
    assert found, f"the harness did not run: {done.stdout[-500:]}"
    result: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return result, console


def marks_by_chart(result: dict[str, Any]) -> dict[str, list[int]]:
    """Chart kind -> the marks drawn in each chart of that kind, in page order."""
    out: dict[str, list[int]] = {}
    for key, marks in result["charts"].items():
        out.setdefault(key.split("#")[0], []).append(marks)
    return out


def assert_reads_well(
    page: Path, profile: Path, chromium: str, widths: tuple[int, ...] = WIDTHS
) -> dict[int, Any]:
    """At each width: no horizontal scroll, every chart drew marks, nothing logged, no script."""
    seen = {}
    for width in widths:
        result, console = in_browser(page, width, profile, chromium)
        assert console == [], console  # no error, no warning, no blocked load: nothing at all
        assert result["innerWidth"] == width
        assert result["scrollWidth"] <= result["clientWidth"], (width, result)
        assert result["scripts"] == 0
        assert result["charts"] and all(m > 0 for m in result["charts"].values()), result
        seen[width] = result
    return seen


def _u(salt: str, customer_id: str) -> float:
    """The pinned group hash (pins.md #1), written out independently of segmentation.groups."""
    return int(hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()[:13], 16) / 16**13


def _group(seg: Segment, cid: str) -> str:
    if _u("global_control", cid) < GLOBAL_CONTROL:
        return "global_control"
    u = _u(seg.name, cid)
    if u < seg.holdout:
        return "holdout"
    if not seg.splits:
        return "target"
    v, total = (u - seg.holdout) / (1 - seg.holdout), 0.0
    for arm, fraction in seg.splits.items():
        total += fraction
        if v < total:
            return arm
    return list(seg.splits)[-1]


def test_report_data_and_rendering_in_chromium(
    seg_repo: FeastRepo, tmp_path: Path, chromium: str
) -> None:
    engine = SegmentEngine(seg_repo.store, SEGMENTS, chunk=150)
    t0 = seg_repo.now
    for hours in (0, 6):  # two refreshes: a history of two points per segment
        engine.refresh(now=t0 + dt.timedelta(hours=hours))
    page = tmp_path / "report" / "segments.html"
    data = write_report(engine, page, global_control=GLOBAL_CONTROL, now=t0)

    table = look.rows(seg_repo)
    ref = {
        "rp_paris": look.members(table, look.equals("city", "Paris")),
        "rp_rich": look.members(table, look.greater("total_revenue", 1000)),
        "rp_young": look.members(table, look.less("age", 40)),
    }
    assert data.overlap.population == 603
    assert data.overlap.sizes == {n: len(m) for n, m in ref.items()}
    assert data.overlap.both("rp_paris", "rp_rich") == len(ref["rp_paris"] & ref["rp_rich"])
    assert [len(data.history[n]) for n in ref] == [2, 2, 2]
    for seg, bal in zip(SEGMENTS, data.balance, strict=True):
        assert bal.counts == Counter(_group(seg, c) for c in ref[seg.name]), seg.name
    rich = data.balance[1]
    assert {"A", "B", "holdout", "global_control"} <= set(rich.counts)
    assert rich.expected["A"] == pytest.approx(0.9 * 0.9 * 0.5)
    assert data.notes and "Global control group: 10%" in data.notes[0]
    assert data.definitions["rp_paris"].description == "Paris <b>customers</b>"
    text = page.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "script-src" not in text and "<script" not in text
    assert not re.search(r"\s(src|href)=", text)  # nothing to fetch: all inline
    assert "Paris &lt;b&gt;customers&lt;/b&gt;" in text  # the description, escaped
    assert "city is &#x27;Paris&#x27;" in text and "total_revenue &gt; 1,000" in text
    assert "10% held out as a control group; the rest split between 2 arms: A 50%, B 50%" in text
    both = len(ref["rp_paris"] & ref["rp_rich"])
    assert f"<b>{both:,}</b> of the " in text  # the overlap in words

    seen = assert_reads_well(page, tmp_path / "profile", chromium)
    marks = marks_by_chart(seen[1280])
    assert marks["sizes"] == [3] and marks["share"] == [1, 1, 1]  # a bar, a meter per segment
    assert marks["history"] == [3 + 3 * 2]  # a line and two points per segment
    assert marks["trend"] == [2, 2, 2]  # a sparkline per card: its line and its last point
    assert marks["groups"] == [len(b.counts) for b in data.balance]
    assert marks["overlap"] == [9]  # n x n cells
    assert marks_by_chart(seen[1920]) == marks

    # Fewer cards and pairs than segments: the others by size, a note says so.
    few = write_report(engine, tmp_path / "few.html", cards=1, top=1, now=t0)
    assert [b.segment for b in few.balance] == ["rp_paris"] and list(few.history) == ["rp_paris"]
    assert "the first 1 are shown as cards" in few.notes[0]
    text = (tmp_path / "few.html").read_text(encoding="utf-8")
    assert text.count('<article class="card"') == 1 and "The other 2 segments" in text
    assert len(re.findall(r"<li title=", text)) == 1


def _small_report(**extra: Any) -> ReportData:
    counts = np.array([[5, 2], [2, 4]])
    return ReportData(
        "p",
        "2026-01-02T00:00:00+00:00",
        Overlap(("a", "b"), 10, counts),
        {"a": [], "b": []},
        [GroupBalance("a", {"target": 4, "holdout": 1}, {"holdout": 0.2, "target": 0.8})],
        **extra,
    )


def test_the_browser_check_catches_a_broken_page(tmp_path: Path, chromium: str) -> None:
    good = render_report(_small_report())
    page = tmp_path / "page.html"
    page.write_text(good, encoding="utf-8")
    assert_reads_well(page, tmp_path / "profile", chromium, (1280,))  # the page as rendered passes

    page.write_text(good.replace("</main>", "<script>document.title = 1;</script></main>"))
    result, console = in_browser(page, 1280, tmp_path / "profile", chromium)
    assert any("Content Security Policy" in line for line in console)  # no script runs
    page.write_text(good.replace("</main>", '<img src="https://example.com/x.png"></main>'))
    _, console = in_browser(page, 1280, tmp_path / "profile", chromium)
    assert any("Content Security Policy" in line for line in console)  # no network, ever
    page.write_text(good.replace("</main>", '<svg class="chart" data-chart="x"></svg></main>'))
    result, _ = in_browser(page, 1280, tmp_path / "profile", chromium)
    assert 0 in result["charts"].values()  # a chart without marks is seen as not drawn
    page.write_text(good.replace("</main>", '<div style="width:1400px">wide</div></main>'))
    result, _ = in_browser(page, 1280, tmp_path / "profile", chromium)
    assert result["scrollWidth"] > result["clientWidth"]  # a horizontal scroll is seen


def test_render_escapes_and_orders_history() -> None:
    entries = [
        HistoryEntry("2026-01-02T00:00:00+00:00", 5, 1, 0),  # newest first, as stored
        HistoryEntry("2026-01-01T00:00:00+00:00", 4, 4, 0),
    ]
    seg = Segment("a", [{"==": [{"var": "city"}, "<Paris>"]}], "<script>alert(2)</script>")
    data = ReportData(
        "<proj>",
        "2026-01-02T00:00:00+00:00",
        Overlap(("a", "b"), 10, np.array([[5, 2], [2, 4]])),
        {"a": entries, "b": []},
        [
            GroupBalance("a", {"target": 4, "holdout": 1}, {"holdout": 0.2, "target": 0.8}),
            GroupBalance("b", {"target": 4}),
        ],
        ["<script>alert(1)</script>"],
        {"a": seg},
    )
    page = render_report(data)
    assert "<proj>" not in page and "&lt;proj&gt;" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)" in page
    assert "&lt;script&gt;alert(2)" in page and "city is &#x27;&lt;Paris&gt;&#x27;" in page
    assert page.count('class="mark line"') == 2  # a's sparkline and the history chart's line
    path = re.search(
        r'data-chart="history".*?class="mark line" d="M([\d.]+),[\d.]+ L([\d.]+),', page
    )
    assert path and float(path.group(1)) < float(path.group(2))  # oldest on the left
    assert "+1 (+25.0%)</span> over 2 refreshes, 2026-01-01 00:00 to 2026-01-02 00:00" in page
    assert "No refresh stored yet" in page  # b's card
    assert "Definition not given" in page  # b has no definition here
    assert "<td>20.0%</td>" in page  # the holdout asked for
    assert "<b>2</b> of the 4 members of <b>b</b> are also in <b>a</b>" in page


def test_a_trend_reads_with_one_two_and_many_refreshes() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def page_with(times: list[dt.datetime]) -> str:
        entries = [HistoryEntry(t.isoformat(), 100 + i, 1, 0) for i, t in enumerate(times)]
        return render_report(_small_report() if not times else ReportData(
            "p", "2026-03-01T00:00:00+00:00", Overlap(("a", "b"), 10, np.array([[5, 2], [2, 4]])),
            {"a": entries[::-1], "b": []}, [GroupBalance("a", {"target": 5})],
        ))  # fmt: skip

    none = page_with([])
    assert "No refresh recorded yet" in none and 'data-chart="trend"' not in none
    one = page_with([start])
    assert "First refresh on 2026-01-01 00:00 UTC: 100 members." in one
    assert 'data-chart="trend"' not in one and 'data-chart="history"' not in one
    assert "One refresh so far" in one
    two = page_with([start, start + dt.timedelta(minutes=5)])
    assert two.count('data-chart="trend"') == 1 and 'data-chart="history"' in two
    assert "00:00:00" in two  # five minutes apart: the axis shows seconds
    # Many refreshes, one of them long before the others: the time axis spans the data, and a
    # sparkline keeps at most SPARKLINE_POINTS points.
    many = [start + dt.timedelta(days=30)] + [
        start + dt.timedelta(days=31, hours=h) for h in range(1000)
    ]
    page = page_with([start, *many])
    spark = re.search(r'data-chart="trend".*?class="mark line" d="([^"]+)"', page)
    assert spark and spark.group(1).count("L") <= 119
    xs = [float(x) for x in re.findall(r"[ML]([\d.]+),", spark.group(1))]
    assert xs == sorted(xs) and xs[0] < 10 and xs[-1] > 300  # left to right, edge to edge
    assert "over 1,002 refreshes" in page


def _many_segments(n: int, refreshes: int) -> ReportData:
    """A report of ``n`` segments (random memberships of 3,000 customers), each carded one with
    ``refreshes`` history entries."""
    rng = np.random.default_rng(5)
    matrix = rng.random((3000, n)) < rng.uniform(0.01, 0.6, n)
    counts, rows = overlap_counts([matrix], n)
    names = tuple(f"segment_with_a_long_name_{i:05d}" for i in range(n))
    definitions = {
        name: Segment(name, [{">=": [{"var": "total_revenue"}, i]}], f"Segment {i}.")
        for i, name in enumerate(names)
    }
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    history = {
        name: [
            HistoryEntry((t0 + dt.timedelta(hours=k)).isoformat(), 100 + k, 1, 1)
            for k in range(refreshes)
        ][::-1]
        for name in names[:MAX_CARDS]
    }
    balance = [
        GroupBalance(name, {"target": int(counts[i, i])})
        for i, name in enumerate(names[:MAX_CARDS])
    ]
    return ReportData(
        "big", t0.isoformat(), Overlap(names, rows, counts), history, balance, [], definitions
    )


def test_2000_segments_make_a_bounded_page_and_pair_list() -> None:
    data = _many_segments(2000, refreshes=500)
    assert data.overlap.pair_count == 1_999_000
    pairs = data.top_pairs()
    assert len(pairs) == 20 and pairs[0].jaccard is not None
    assert [p.jaccard for p in pairs] == sorted((p.jaccard or 0 for p in pairs), reverse=True)
    doc = data.overlap.to_dict()
    assert len(doc["pairs"]) == 20 and doc["matrix"] is None and doc["pair_count"] == 1_999_000
    with pytest.raises(SegmentationError, match="--top K"):
        data.overlap.to_dict(None)  # every pair: refused, with the fix
    assert MAX_LISTED_PAIRS < 1_999_000

    page = render_report(data)
    assert len(page) < 2_500_000  # 902 MB before the bounds (2,000 segments, 20,000 customers)
    assert page.count('<article class="card"') == MAX_CARDS
    assert page.count('data-chart="sizes"') == 1 and page.count('class="mark"') < 5_000
    assert len(re.findall(r'<rect class="mark" x="230"', page)) == MAX_BARS
    assert 'data-chart="overlap"' not in page and "drawn for up to 30 segments" in page
    assert page.count("<li title=") == 20
    assert "The other 1,800 segments" in page


def test_2000_segments_read_well_in_chromium(tmp_path: Path, chromium: str) -> None:
    page = tmp_path / "big.html"
    page.write_text(render_report(_many_segments(2000, refreshes=3)), encoding="utf-8")
    seen = assert_reads_well(page, tmp_path / "profile", chromium, (1280,))
    assert len(marks_by_chart(seen[1280])["trend"]) == MAX_CARDS


def test_cli_report(
    seg_repo: FeastRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segdir = tmp_path / "segments"
    segdir.mkdir()
    (segdir / "s.yaml").write_text(
        "- name: rpc_paris\n  holdout: 0.25\n  rules:\n    - {'==': [{'var': 'city'}, 'Paris']}\n"
        "- name: rpc_lyon\n  rules:\n    - {'==': [{'var': 'city'}, 'Lyon']}\n"
    )
    out = tmp_path / "r.html"
    argv = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir), "report", str(out)]
    code = main([*argv, "--top", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith("report of 2 segment(s) over 603 customer(s)")
    page = out.read_text(encoding="utf-8")
    assert 'data-chart="overlap"' in page and "No refresh recorded yet" in page
    assert "rpc_lyon and rpc_paris share no customer" not in page  # no shared pair listed
    assert "No two segments share a customer." in page
    code = main([*argv, "--top", str(MAX_LISTED_PAIRS + 1)])
    assert code == 2 and "at most 100,000 pairs" in capsys.readouterr().err
