"""Segments in the DWH: SQL pushdown equals the in-memory path (differential, Hypothesis).

One data set with nulls, empty strings, zeros, negatives, 29 February timestamps and rows
"from the future" is written to a real PostgreSQL schema and to a SQLite file (the contract's
``customer_features_view``). The in-memory side is what the online store would serve for it:
the DWH's counts turned into facts and derived again as of ``NOW`` (``xiva_source.dwh.facts``,
``xiva_source.features.derived``), evaluated by the vectorized engine. Random rules must select
the same members on both databases.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentation.segment import Segment
from segmentation.sql import DwhSegments, SqlCompileError
from xiva_source.dwh.engine import get_engine
from xiva_source.dwh.schema import contract_metadata
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE
from xiva_source.features.derived import derive_frame, facts_from_counts

NOW = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC)

NUM_FEATURES = [
    "total_revenue",
    "transaction_count",
    "avg_transaction_value",
    "lifetime_value",
    "churn_score",
    "age",
    "last_purchase_days_ago",
]
STR_FEATURES = ["customer_status", "customer_tier", "city"]
STRINGS = ["Paris", "Lyon", "paris", "", "gold", "silver", "active", " Paris"]
NUMBERS = [0, 1, -1, 2, 2.5, 3, 10, 25, 40, 100, 0.25, -3.75, 1000, 1234.56]
STAMPS = [
    dt.datetime(2024, 2, 29, 10, 0),
    dt.datetime(2025, 12, 31, 23, 59, 59),
    dt.datetime(2026, 3, 1, 1, 0),
    dt.datetime(2026, 2, 28, 12, 0),
    dt.datetime(2023, 3, 1, 0, 0),
    dt.datetime(2026, 3, 5, 0, 0),  # after NOW: derived values can be missing
    dt.datetime(2020, 6, 15, 8, 30),
]


def _rows(n: int = 90, seed: int = 11) -> list[dict[str, Any]]:
    rnd = random.Random(seed)

    def maybe(value: Any, p: float = 0.2) -> Any:
        return None if rnd.random() < p else value

    rows = []
    for i in range(n):
        rows.append(
            {
                "customer_id": str(uuid.UUID(int=i + 1)),
                "customer_status": maybe(rnd.choice(STRINGS)),
                "total_revenue": maybe(rnd.choice([0.0, 2.5, 100.0, 1234.56, -3.75, 40.0, 7.1])),
                "transaction_count": maybe(rnd.choice([0, 1, 2, 3, 10, 25, 40])),
                "last_purchase_days_ago": maybe(rnd.choice([0, 1, 2, 10, 25, 100, -1, 800])),
                "avg_transaction_value": maybe(rnd.choice([0.0, 0.25, 2.5, 3.33, -1.0, 10.0])),
                "lifetime_value": maybe(rnd.choice([0.0, 1.0, 100.0, 1000.0, 2.5])),
                "churn_score": maybe(rnd.choice([0.0, 0.25, 0.5, 0.9999, 1.0, -0.5])),
                "customer_tier": maybe(rnd.choice(STRINGS)),
                "city": maybe(rnd.choice(STRINGS)),
                "age": maybe(rnd.choice([0, 1, 2, 3, 18, 25, 40, 100, -2])),
                "updated_at": rnd.choice(STAMPS),
            }
        )
    return rows


ROWS = _rows()


def _online_frame(rows: list[dict[str, Any]], now: dt.datetime) -> pd.DataFrame:
    """What the online store serves for these DWH rows (facts derived again as of ``now``)."""
    df = pd.DataFrame(rows).set_index("customer_id")
    out = pd.DataFrame(index=df.index)
    for name in STR_FEATURES:
        out[name] = df[name].astype(object).where(df[name].notna(), None)
    for name in ["total_revenue", "avg_transaction_value", "lifetime_value", "churn_score"]:
        out[name] = pd.to_numeric(df[name]).astype("float64")
    out["transaction_count"] = df["transaction_count"].astype("Int64")
    stamps = df["updated_at"]
    facts = pd.DataFrame(index=df.index)
    facts["last_payment_date"] = facts_from_counts(
        "last_purchase_days_ago", df["last_purchase_days_ago"], stamps
    ).to_numpy()
    facts["birth_date"] = facts_from_counts("age", df["age"], stamps).to_numpy()
    derived = derive_frame(facts, as_of=now)
    out["last_purchase_days_ago"] = derived["last_purchase_days_ago"]
    out["age"] = derived["age"]
    return out


FRAME = _online_frame(ROWS, NOW)


def _load(url: str, rows: list[dict[str, Any]]) -> None:
    engine = get_engine(url)
    metadata = contract_metadata()
    metadata.create_all(engine, tables=[metadata.tables[CUSTOMER_FEATURES_TABLE]])
    with engine.begin() as conn:
        conn.execute(sa.insert(metadata.tables[CUSTOMER_FEATURES_TABLE]), rows)


@pytest.fixture
def dwh_urls(pg_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    sqlite_url = f"sqlite:///{tmp_path / 'dwh.sqlite'}"
    for url in (pg_url, sqlite_url):
        _load(url, ROWS)
    yield {"postgresql": pg_url, "sqlite": sqlite_url}
    for url in (pg_url, sqlite_url):
        get_engine(url).dispose()


def _in_memory(segment: Segment, frame: pd.DataFrame = FRAME) -> list[str]:
    mask = segment.mask(frame).to_numpy(dtype=bool)
    return sorted(str(c) for c in frame.index[mask])


# --- rule strategies ------------------------------------------------------------------------------

num_var = st.sampled_from(NUM_FEATURES).map(lambda n: {"var": n})
str_var = st.sampled_from(STR_FEATURES).map(lambda n: {"var": n})
num_lit = st.sampled_from(NUMBERS)
str_lit = st.sampled_from(STRINGS)
num_leaf = st.one_of(
    num_var,
    num_var,
    num_lit,
    st.just(None),
    st.tuples(st.sampled_from(NUM_FEATURES), num_lit).map(lambda t: {"var": [t[0], t[1]]}),
)
str_leaf = st.one_of(
    str_var,
    str_var,
    str_lit,
    st.tuples(st.sampled_from(STR_FEATURES), str_lit).map(lambda t: {"var": [t[0], t[1]]}),
)


def _num_expr(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/", "min", "max"]), children, children).map(
            lambda t: {t[0]: [t[1], t[2]]}
        ),
        children.map(lambda c: {"-": [c]}),
        st.tuples(
            st.sampled_from(["+", "*", "min", "max"]), st.lists(children, min_size=1, max_size=3)
        ).map(lambda t: {t[0]: t[1]}),
    )


num_expr = st.recursive(num_leaf, _num_expr, max_leaves=4)


def _bool_leaf() -> st.SearchStrategy[Any]:
    cmp_ops = st.sampled_from(["<", "<=", ">", ">="])
    eq_ops = st.sampled_from(["==", "===", "!=", "!=="])
    return st.one_of(
        st.tuples(cmp_ops, num_expr, num_expr).map(lambda t: {t[0]: [t[1], t[2]]}),
        st.tuples(st.sampled_from(["<", "<="]), num_expr, num_expr, num_expr).map(
            lambda t: {t[0]: [t[1], t[2], t[3]]}
        ),
        st.tuples(eq_ops, num_expr, num_expr).map(lambda t: {t[0]: [t[1], t[2]]}),
        st.tuples(eq_ops, str_leaf, st.one_of(str_leaf, st.just(None))).map(
            lambda t: {t[0]: [t[1], t[2]]}
        ),
        st.tuples(
            st.one_of(num_var, num_expr.filter(lambda e: isinstance(e, dict))),
            st.lists(num_lit, max_size=4),
        ).map(lambda t: {"in": [t[0], t[1]]}),
        num_expr.map(lambda e: {"!!": e}),
        st.tuples(str_var, st.lists(str_lit, max_size=4)).map(lambda t: {"in": [t[0], t[1]]}),
        st.lists(st.sampled_from(NUM_FEATURES + STR_FEATURES), min_size=1, max_size=3).map(
            lambda names: {"missing": names}
        ),
        st.tuples(
            st.integers(1, 3),
            st.lists(st.sampled_from(NUM_FEATURES + STR_FEATURES), min_size=1, max_size=3),
        ).map(lambda t: {"missing_some": [t[0], t[1]]}),
        num_var.map(lambda v: {"!!": v}),
        str_var.map(lambda v: {"!": v}),
        st.booleans(),
    )


def _bool_expr(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    anything = st.one_of(children, num_leaf, str_leaf, num_expr)
    return st.one_of(
        children.map(lambda c: {"!": c}),
        children.map(lambda c: {"!!": [c]}),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: {t[0]: t[1]}
        ),
        # and/or over values (their truth only), if with and without an else
        st.tuples(st.sampled_from(["and", "or"]), st.lists(anything, min_size=1, max_size=3)).map(
            lambda t: {"!": {t[0]: t[1]}}
        ),
        st.tuples(children, anything, anything).map(lambda t: {"if": [t[0], t[1], t[2]]}),
        st.tuples(children, children).map(lambda t: {"if": [t[0], t[1]]}),
        st.tuples(children, num_expr, num_expr, num_lit, st.sampled_from(["<", ">=", "=="])).map(
            lambda t: {t[4]: [{"if": [t[0], t[1], t[2]]}, t[3]]}
        ),
        st.tuples(children, str_leaf, str_leaf, str_lit).map(
            lambda t: {"==": [{"if": [t[0], t[1], t[2]]}, t[3]]}
        ),
        st.tuples(children, children, children).map(lambda t: {"?:": list(t)}),
    )


bool_rule = st.recursive(_bool_leaf(), _bool_expr, max_leaves=6).filter(
    lambda r: isinstance(r, dict)
)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=st.lists(bool_rule, min_size=1, max_size=2))
def test_random_rules_select_the_same_members(
    dwh_urls: dict[str, str], rules: list[dict[str, Any]]
) -> None:
    segment = Segment("random", rules)
    expected = _in_memory(segment)
    for dialect, url in dwh_urls.items():
        got = DwhSegments(url, [segment], now=NOW).members("random")
        assert got == expected, f"{dialect}: {json.dumps(rules)}"


# --- hand-written cases ---------------------------------------------------------------------------

CASES: dict[str, list[dict[str, Any]]] = {
    # SQL's NULL must not leak through NOT / != (a missing city is "not Paris").
    "not_paris": [{"!": {"==": [{"var": "city"}, "Paris"]}}],
    "ne_paris": [{"!=": [{"var": "city"}, "Paris"]}],
    "between": [{"<=": [1, {"var": "transaction_count"}, 25]}],
    "no_revenue": [{"missing": ["total_revenue"]}],
    "ratio": [{">": [{"/": [{"var": "total_revenue"}, {"var": "transaction_count"}]}, 5]}],
    "adults_recent": [
        {">=": [{"var": "age"}, 18]},
        {"<": [{"var": "last_purchase_days_ago"}, 400]},
    ],
    "truthy_or": [{"or": [{"var": "customer_tier"}, {"var": "churn_score"}]}],
    "refs": [{"segment": "not_paris"}, {"!": {"segment": "between"}}],
}


def test_hand_written_segments_sizes_and_members(dwh_urls: dict[str, str]) -> None:
    segments = [Segment(name, rules) for name, rules in CASES.items()]
    frame = FRAME.copy()
    # References need the referenced segments' eligibility as columns (evaluate_frame's way).
    from segmentation.rules import reference_key

    for seg in segments[:-1]:
        frame[reference_key(seg.name)] = seg.mask(frame).to_numpy()
    expected = {s.name: _in_memory(s, frame) for s in segments}
    assert 0 < len(expected["not_paris"]) < len(FRAME)
    assert len(expected["not_paris"]) > len(expected["ne_paris"])  # missing cities count
    for dialect, url in dwh_urls.items():
        dwh = DwhSegments(url, segments, now=NOW)
        assert dwh.population() == len(ROWS)
        assert dwh.sizes() == {n: len(ids) for n, ids in expected.items()}, dialect
        for name, ids in expected.items():
            assert dwh.members(name) == ids, (dialect, name)


@pytest.mark.parametrize(
    ("rule", "operator"),
    [
        ({"==": [{"cat": [{"var": "city"}, "x"]}, "Parisx"]}, "cat"),
        ({">": [{"%": [{"var": "transaction_count"}, 3]}, 1]}, "%"),
        ({"<": [{"var": "city"}, "M"]}, "<"),
        ({"==": [{"var": "city"}, 1]}, "=="),
        ({"in": ["ar", {"var": "city"}]}, "in"),
        ({"==": [{"substr": [{"var": "city"}, 1]}, "aris"]}, "substr"),
    ],
)
def test_uncompilable_operator_is_named(
    dwh_urls: dict[str, str], rule: dict[str, Any], operator: str
) -> None:
    dwh = DwhSegments(dwh_urls["sqlite"], [Segment("bad", [rule])], now=NOW)
    with pytest.raises(SqlCompileError) as info:
        dwh.members("bad")
    assert info.value.operator == operator
    assert f"operator {operator!r} cannot run in SQL" in str(info.value)
    assert "segment 'bad', rule 'rule1'" in str(info.value) and "Fix:" in str(info.value)


def test_unknown_column_is_named(dwh_urls: dict[str, str]) -> None:
    dwh = DwhSegments(dwh_urls["sqlite"], [Segment("x", [{"var": "loyalty_points"}])], now=NOW)
    with pytest.raises(SqlCompileError, match="feature 'loyalty_points' is not a number or text"):
        dwh.sizes()


def test_latest_row_per_customer(pg_url: str) -> None:
    """A table with several rows per customer: the latest one is the customer's (as online)."""
    engine = get_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE feats (customer_id TEXT, city TEXT, "
                "transaction_count INTEGER, updated_at TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO feats VALUES (:c, :city, :n, :t)"),
            [
                {"c": "A", "city": "Paris", "n": 1, "t": dt.datetime(2026, 1, 1)},
                {"c": "A", "city": "Lyon", "n": 5, "t": dt.datetime(2026, 2, 1)},
                {"c": "B", "city": "Lyon", "n": 9, "t": dt.datetime(2026, 1, 1)},
                {"c": "B", "city": "Paris", "n": None, "t": dt.datetime(2026, 2, 2)},
            ],
        )
    seg = Segment("paris", [{"==": [{"var": "city"}, "Paris"]}])
    dwh = DwhSegments(pg_url, [seg], table="feats", now=NOW)
    assert dwh.members("paris") == ["B"] and dwh.population() == 2
    frame = dwh.member_frame("paris", with_features=True)
    assert list(frame.columns) == ["customer_id", "city"] and frame["city"].tolist() == ["Paris"]
    engine.dispose()


def test_ages_and_days_follow_now(dwh_urls: dict[str, str]) -> None:
    """Features that age are derived relative to the injected now, like the online reader."""
    seg = Segment(
        "old", [{">=": [{"var": "age"}, 26]}, {">": [{"var": "last_purchase_days_ago"}, 5]}]
    )
    later = NOW + dt.timedelta(days=800)
    expected_now = _in_memory(seg)
    expected_later = _in_memory(seg, _online_frame(ROWS, later))
    assert expected_now != expected_later
    for url in dwh_urls.values():
        assert DwhSegments(url, [seg], now=NOW).members("old") == expected_now
        assert DwhSegments(url, [seg], now=later).members("old") == expected_later
        frame = DwhSegments(url, [seg], now=NOW).member_frame("old", with_features=True)
        online = FRAME.loc[expected_now, ["age", "last_purchase_days_ago"]].reset_index()
        pd.testing.assert_frame_equal(
            frame, online[["customer_id", "age", "last_purchase_days_ago"]], check_dtype=False
        )


# --- the command line, on the real PostgreSQL ----------------------------------------------------


@pytest.fixture
def cli_dwh(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The data set in PostgreSQL as DWH_URL, and a segments directory."""
    _load(pg_url, ROWS)
    monkeypatch.setenv("DWH_URL", pg_url)
    monkeypatch.setenv("SEGMENTS_GLOBAL_CONTROL", "0.1")
    d = tmp_path / "segments"
    d.mkdir()
    (d / "s.yaml").write_text(
        "- name: not_paris\n  holdout: 0.3\n  rules:\n"
        "    - {'!': {'==': [{'var': 'city'}, 'Paris']}}\n"
        "- name: adults\n  splits: {A: 0.5, B: 0.5}\n  rules:\n"
        "    - {'>=': [{'var': 'age'}, 18]}\n"
        "    - {'segment': 'not_paris'}\n"
    )
    yield d
    get_engine(pg_url).dispose()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from xiva_source.cli import segmentation_main

    code = segmentation_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sizes_members_export_in_dwh(
    cli_dwh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(dt.UTC)  # the CLI derives ages as of now
    frame = _online_frame(ROWS, now)
    not_paris = Segment("not_paris", CASES["not_paris"])
    frame["\x00segment\x00not_paris"] = not_paris.mask(frame).to_numpy()
    adults = Segment("adults", [{">=": [{"var": "age"}, 18]}, {"segment": "not_paris"}])
    expected = {"not_paris": _in_memory(not_paris, frame), "adults": _in_memory(adults, frame)}
    base = ("--segments-dir", str(cli_dwh))

    code, out, err = _cli(capsys, *base, "sizes", "--in-dwh", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["population"] == len(ROWS)
    assert {s["name"]: s["size"] for s in doc["segments"]} == {
        n: len(ids) for n, ids in expected.items()
    }
    code, out, _ = _cli(capsys, *base, "sizes", "--in-dwh")
    assert code == 0 and f"not_paris\t{len(expected['not_paris'])}\t" in out

    code, out, _ = _cli(capsys, *base, "members", "adults", "--in-dwh")
    assert code == 0 and out.split() == expected["adults"]
    code, out, _ = _cli(capsys, *base, "members", "adults", "--in-dwh", "--json")
    assert code == 0 and json.loads(out)["members"] == expected["adults"]
    code, _, err = _cli(capsys, *base, "members", "adults", "--in-dwh", "--stored")
    assert code == 2 and "--stored" in err

    csv = tmp_path / "out" / "adults.csv"
    code, out, _ = _cli(capsys, *base, "export", "adults", str(csv), "--in-dwh", "--with-features")
    assert code == 0 and f"{len(expected['adults'])} member(s)" in out
    exported = pd.read_csv(csv)
    assert list(exported.columns) == ["customer_id", "group", "age"]
    assert exported["customer_id"].tolist() == expected["adults"]
    seg = Segment.from_dict(
        {"name": "adults", "splits": {"A": 0.5, "B": 0.5}, "rules": adults.to_dict()["rules"]}
    )
    assert exported["group"].tolist() == list(seg.groups(expected["adults"], global_control=0.1))
    assert set(exported["group"]) <= {"A", "B", "global_control"}
    assert exported["age"].tolist() == frame.loc[expected["adults"], "age"].tolist()

    parquet = tmp_path / "adults.parquet"
    code, _, _ = _cli(capsys, *base, "members", "adults", "-o", str(parquet), "--in-dwh")
    assert code == 0
    assert pd.read_parquet(parquet)["customer_id"].tolist() == expected["adults"]


def test_cli_in_dwh_names_the_operator(cli_dwh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cli_dwh / "bad.json").write_text(
        json.dumps({"name": "bad", "rules": [{"==": [{"cat": [{"var": "city"}, "!"]}, "x!"]}]})
    )
    code, out, err = _cli(capsys, "--segments-dir", str(cli_dwh), "members", "bad", "--in-dwh")
    assert code == 1 and out == ""
    assert "operator 'cat' cannot run in SQL" in err and "Traceback" not in err
    # sizes: the segment that cannot run is reported, the others are counted (exit 1)
    code, out, err = _cli(capsys, "--segments-dir", str(cli_dwh), "sizes", "--in-dwh")
    assert code == 1 and "segment 'bad', rule 'rule1'" in err and "operator 'cat'" in err
    assert [line.split("\t")[0] for line in out.splitlines()] == [
        "not_paris",
        "adults",
        f"population: {len(ROWS)} customer(s)",
    ]


def test_cli_sizes_in_dwh_runs_every_segment_but_the_bad_ones_and_names_them(
    cli_dwh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A float overflow in the warehouse (in memory: a missing value), and a segment whose SQL,
    # its references inlined, has more than 65,535 parameters: each alone is refused by the
    # warehouse; together with the good ones they used to stop every count.
    overflow = {">": [{"*": [{"var": "total_revenue"}, 1e308, 10]}, 1]}
    values = [f"v{i}" for i in range(999)]
    segments = [
        {"name": "overflow", "rules": [overflow]},
        {"name": "cities", "rules": [{"in": [{"var": "city"}, values]}]},
        {"name": "huge", "rules": [{"or": [{"segment": "cities"}] * 70}]},
    ]
    (cli_dwh / "bad.json").write_text(json.dumps(segments))
    expected = {
        "not_paris": len(_in_memory(Segment("not_paris", CASES["not_paris"]))),
        "cities": 0,
    }

    code, out, err = _cli(capsys, "--segments-dir", str(cli_dwh), "sizes", "--in-dwh", "--json")

    assert code == 1 and "Traceback" not in err
    doc = json.loads(out)
    sizes = {s["name"]: s["size"] for s in doc["segments"]}
    assert set(sizes) == {"not_paris", "adults", "cities"} and doc["population"] == len(ROWS)
    assert {n: sizes[n] for n in expected} == expected
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, err
    assert "counting segment 'overflow'" in errors[0] and "value out of range" in errors[0]
    assert "float overflow" in errors[0] and "without --in-dwh" in errors[0]
    assert "counting segment 'huge'" in errors[1] and "too large to run as one SQL" in errors[1]


def test_infinities_and_nan_as_in_memory(dwh_urls: dict[str, str]) -> None:
    """NaN is missing (as pandas reads it); a computed non-finite value is missing; a stored
    infinity compares as one (as the vectorized path keeps it)."""
    values = [float("nan"), float("inf"), float("-inf"), 1.0, None, 0.0, -2.5]
    ids = [f"c{i}" for i in range(len(values))]
    rules: list[dict[str, Any]] = [
        {"!!": {"var": "x"}},
        {">": [{"var": "x"}, 0]},
        {"!!": {"+": [{"var": "x"}, 1]}},
        {"==": [{"/": [1, {"var": "x"}]}, 0]},
        {"!!": {"max": [{"var": "x"}, 1]}},
        {"!": {"-": [{"var": "x"}, {"var": "x"}]}},
        {"<": [{"*": [{"var": "x"}, -1]}, 0]},
        {"missing": ["x"]},
    ]
    frame = pd.DataFrame(
        {"x": pd.array(values, dtype="float64")}, index=pd.Index(ids, name="customer_id")
    )
    assert _in_memory(Segment("t", [rules[0]]), frame) == ["c1", "c2", "c3", "c6"]
    assert _in_memory(Segment("t", [rules[2]]), frame) == ["c3", "c5", "c6"]  # inf + 1: missing
    for url in dwh_urls.values():
        engine = get_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("CREATE TABLE floats (customer_id TEXT, x FLOAT, updated_at TIMESTAMP)")
            )
            # SQLite stores NaN as NULL: both read it as missing, as pandas does.
            conn.execute(
                sa.text("INSERT INTO floats VALUES (:c, :x, :t)"),
                [
                    {"c": c, "x": v, "t": dt.datetime(2026, 1, 1)}
                    for c, v in zip(ids, values, strict=True)
                ],
            )
        for i, rule in enumerate(rules):
            seg = Segment(f"r{i}", [rule])
            got = DwhSegments(url, [seg], table="floats", now=NOW).members(seg.name)
            assert got == _in_memory(seg, frame), (url.split(":")[0], rule)


def test_references_inline_and_cycles_are_refused() -> None:
    from segmentation.errors import SegmentCycleError, UnknownSegmentReferenceError
    from segmentation.sql import SqlFeature, compile_segment_sql

    table = sa.table("t", sa.column("city", sa.String))
    features = {"city": SqlFeature("city", "str", table.c.city)}
    a = Segment("a", [{"segment": "b"}])
    b = Segment("b", [{"!": {"segment": "a"}}])
    with pytest.raises(SegmentCycleError, match="a -> b -> a"):
        compile_segment_sql(a, features, dialect="sqlite", segments={"a": a, "b": b})
    with pytest.raises(UnknownSegmentReferenceError, match="'b'"):
        compile_segment_sql(a, features, dialect="sqlite", segments={"a": a})
    with pytest.raises(SqlCompileError, match="operator 'segment'"):
        compile_segment_sql(a, features, dialect="sqlite")
