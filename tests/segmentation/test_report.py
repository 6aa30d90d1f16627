"""The HTML report: its data against plain Python, and the page rendered by headless Chromium
(Debian's ``chromium``; ``.ci/run`` installs it): every chart drew marks, no console message."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from segmentation import Segment, SegmentEngine
from segmentation.memberships import HistoryEntry
from segmentation.overlap import Overlap
from segmentation.report import GroupBalance, ReportData, render_report, write_report
from tests.support.segmentation import look
from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main as main

SEGMENTS = [
    Segment("rp_paris", [{"==": [{"var": "city"}, "Paris"]}], holdout=0.2),
    Segment(
        "rp_rich",
        [{">": [{"var": "total_revenue"}, 1000]}],
        holdout=0.1,
        splits={"A": 0.5, "B": 0.5},
    ),
    Segment("rp_young", [{"<": [{"var": "age"}, 40]}]),
]
GLOBAL_CONTROL = 0.1


def render(page: Path, profile: Path, chromium: str) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages Chromium (the fixture's
    path) logged."""
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests run as root in the CI container
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def chart_marks(dom: str) -> dict[str, int]:
    """Chart name -> the marks the page's script found drawn (non-empty bounding box)."""
    found = {}
    for tag in re.findall(r"<svg [^>]*>", dom):
        name = re.search(r'data-chart="([^"]+)"', tag)
        marks = re.search(r'data-marks="(\d+)"', tag)
        if name:
            found[name.group(1)] = int(marks.group(1)) if marks else -1
    return found


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

    text = page.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not re.search(r"\s(src|href)=", text)  # nothing to fetch: all inline

    dom, console = render(page, tmp_path / "profile", chromium)
    assert console == []  # no error, no warning, no blocked load: nothing logged at all
    assert 'data-ready="1"' in dom and 'data-charts="4"' in dom and 'data-drawn="4"' in dom
    marks = chart_marks(dom)
    assert set(marks) == {"sizes", "history", "overlap", "balance"}
    assert marks["sizes"] == 3 and marks["overlap"] == 9  # a bar per segment, n x n cells
    assert marks["history"] == 3 + 3 * 2  # a line and two points per segment
    assert marks["balance"] >= 3 + 4 + 2  # stacked groups per segment


def test_the_browser_check_catches_a_broken_page(tmp_path: Path, chromium: str) -> None:
    empty = ReportData("p", "2026-01-01T00:00:00+00:00", Overlap((), 0, np.zeros((0, 0))), {}, [])
    page = tmp_path / "empty.html"
    html = render_report(empty)
    page.write_text(html.replace("</body>", "<script>notDefined();</script></body>"))
    dom, console = render(page, tmp_path / "profile", chromium)
    assert 'data-drawn="0"' in dom  # charts without marks are seen as not drawn
    assert any("notDefined is not defined" in line for line in console)
    page.write_text(html.replace("</body>", '<img src="https://example.com/x.png"></body>'))
    _, console = render(page, tmp_path / "profile", chromium)
    assert any("Content Security Policy" in line for line in console)  # no network, ever


def test_render_escapes_and_orders_history() -> None:
    counts = np.array([[5, 2], [2, 4]])
    entries = [
        HistoryEntry("2026-01-02T00:00:00+00:00", 5, 1, 0),  # newest first, as stored
        HistoryEntry("2026-01-01T00:00:00+00:00", 4, 4, 0),
    ]
    data = ReportData(
        "<proj>",
        "2026-01-02T00:00:00+00:00",
        Overlap(("a", "b"), 10, counts),
        {"a": entries, "b": []},
        [GroupBalance("a", {"target": 4, "holdout": 1}, {"holdout": 0.2, "target": 0.8})],
        ["<script>alert(1)</script>"],
    )
    page = render_report(data)
    assert "<proj>" not in page and "&lt;proj&gt;" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert page.count('class="mark line"') == 1  # b has no history
    path = re.search(r'class="mark line" d="M([\d.]+),[\d.]+ L([\d.]+),', page)
    assert path and float(path.group(1)) < float(path.group(2))  # oldest on the left
    assert "(asked 20.0%)" in page and "2 customer(s) in both, Jaccard 0.286" in page


def test_cli_report(
    seg_repo: FeastRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segdir = tmp_path / "segments"
    segdir.mkdir()
    (segdir / "s.yaml").write_text(
        "- name: rpc_paris\n  holdout: 0.25\n  rules:\n    - {'==': [{'var': 'city'}, 'Paris']}\n"
    )
    out = tmp_path / "r.html"
    code = main(["--repo", str(seg_repo.path), "--segments-dir", str(segdir), "report", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith("report of 1 segment(s) over 603 customer(s)")
    page = out.read_text(encoding="utf-8")
    assert 'data-chart="overlap"' in page and "No refresh recorded yet" in page
