"""The bundled Xiva simulator, exercised as a real HTTP server over loopback with ``requests``."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import (
    ENDPOINTS,
    FaultConfig,
    SimulatorConfig,
    SimulatorNotRunningError,
    UnknownCustomerError,
    XivaSimulator,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LIST = "/customerManagement/v4/customer/"
NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
TOKEN_NOT_VALID = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
REFRESH_INVALID = {"detail": "Token is invalid or expired", "code": "token_not_valid"}


# -- helpers ---------------------------------------------------------------------------------------


def jwt_payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def login(sim: XivaSimulator, user: str = SIM_USER, password: str = SIM_PASSWORD) -> dict[str, str]:
    response = requests.post(
        f"{sim.base_url}/auth/jwt/create/", json={"username": user, "password": password}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def authed(sim: XivaSimulator, http: requests.Session) -> requests.Session:
    """A session carrying a valid access token for the conftest user."""
    http.headers["Authorization"] = f"Bearer {login(sim)['access']}"
    return http


def get(
    session: requests.Session, sim: XivaSimulator, path: str, **params: Any
) -> requests.Response:
    return session.get(f"{sim.base_url}{path}", params=params or None, timeout=10)


def all_customers(sim: XivaSimulator) -> list[dict[str, Any]]:
    return [sim.customer(cid) for cid in sim.customer_ids()]


def all_views(sim: XivaSimulator) -> list[dict[str, Any]]:
    return [sim.view_360(cid) for cid in sim.customer_ids()]


# -- authentication --------------------------------------------------------------------------------


def test_create_returns_signed_access_and_refresh_jwts(sim: XivaSimulator) -> None:
    before = time.time()
    tokens = login(sim)

    access, refresh = jwt_payload(tokens["access"]), jwt_payload(tokens["refresh"])
    header = json.loads(base64.urlsafe_b64decode(tokens["access"].split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert (access["type"], refresh["type"]) == ("access", "refresh")
    assert access["sub"] == refresh["sub"] == SIM_USER
    assert access["jti"] != refresh["jti"]
    assert before + 300 <= access["exp"] <= time.time() + 301
    assert before + 86400 <= refresh["exp"] <= time.time() + 86401


def test_create_accepts_email_instead_of_username(sim: XivaSimulator) -> None:
    sim.add_user("ops@example.test", "mail-pass")
    response = requests.post(
        f"{sim.base_url}/auth/jwt/create",  # no trailing slash
        json={"email": "ops@example.test", "password": "mail-pass"},
    )
    assert response.status_code == 200
    assert jwt_payload(response.json()["access"])["sub"] == "ops@example.test"


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            {"username": SIM_USER, "password": "wrong"},
            401,
            {"detail": "No active account found with the given credentials"},
        ),
        (
            {"username": "nobody", "password": SIM_PASSWORD},
            401,
            {"detail": "No active account found with the given credentials"},
        ),
        ({"password": "x"}, 400, {"username": ["This field is required."]}),
        ({"username": SIM_USER}, 400, {"password": ["This field is required."]}),
        ({"username": "", "password": "x"}, 400, {"username": ["This field may not be blank."]}),
    ],
)
def test_create_rejections(
    sim: XivaSimulator, body: dict[str, str], status: int, expected: dict[str, Any]
) -> None:
    response = requests.post(f"{sim.base_url}/auth/jwt/create/", json=body)
    assert response.status_code == status
    assert response.json() == expected


def test_refresh_gives_a_new_working_access_token(
    sim: XivaSimulator, http: requests.Session
) -> None:
    tokens = login(sim)
    response = http.post(f"{sim.base_url}/auth/jwt/refresh/", json={"refresh": tokens["refresh"]})
    assert response.status_code == 200
    access = response.json()["access"]
    assert access != tokens["access"]
    assert jwt_payload(access)["type"] == "access"
    detail = http.get(
        f"{sim.base_url}{LIST}", headers={"Authorization": f"JWT {access}"}, params={"limit": 1}
    )
    assert detail.status_code == 200


def test_dead_refresh_tokens_get_401_token_not_valid(sim: XivaSimulator) -> None:
    url = f"{sim.base_url}/auth/jwt/refresh/"
    tokens = login(sim)
    forged = tokens["refresh"][:-4] + ("AAAA" if not tokens["refresh"].endswith("AAAA") else "BBBB")
    for bad in ("not-a-jwt", forged, tokens["access"]):  # garbage, bad signature, wrong type
        response = requests.post(url, json={"refresh": bad})
        assert (response.status_code, response.json()) == (401, REFRESH_INVALID)

    sim.revoke_refresh_tokens()
    response = requests.post(url, json={"refresh": tokens["refresh"]})
    assert (response.status_code, response.json()) == (401, REFRESH_INVALID)
    assert requests.post(url, json={"refresh": login(sim)["refresh"]}).status_code == 200

    assert requests.post(url, json={}).json() == {"refresh": ["This field is required."]}


def test_refresh_token_expires(sim: XivaSimulator) -> None:
    sim.set_token_lifetimes(refresh=0.2)
    tokens = login(sim)
    time.sleep(max(0.0, jwt_payload(tokens["refresh"])["exp"] - time.time()) + 0.05)
    response = requests.post(f"{sim.base_url}/auth/jwt/refresh/", json=tokens)
    assert (response.status_code, response.json()) == (401, REFRESH_INVALID)


def test_missing_and_invalid_credentials(sim: XivaSimulator, http: requests.Session) -> None:
    response = get(http, sim, LIST)
    assert (response.status_code, response.json()) == (401, NOT_PROVIDED)
    response = http.get(f"{sim.base_url}{LIST}", headers={"Authorization": "Basic abc"})
    assert (response.status_code, response.json()) == (401, NOT_PROVIDED)

    refresh = login(sim)["refresh"]
    for header in ("Bearer garbage", f"Bearer {refresh}", "Bearer"):
        response = http.get(f"{sim.base_url}{LIST}", headers={"Authorization": header})
        assert (response.status_code, response.json()) == (401, TOKEN_NOT_VALID)


def test_expired_access_token_is_rejected_then_refresh_recovers(sim: XivaSimulator) -> None:
    sim.set_token_lifetimes(access=0.2)
    tokens = login(sim)
    exp = jwt_payload(tokens["access"])["exp"]
    assert exp - time.time() <= 1.3  # exp is whole seconds, rounded up
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    headers = {"Authorization": f"Bearer {tokens['access']}"}
    response = requests.get(f"{sim.base_url}{LIST}", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"

    sim.set_token_lifetimes(access=300)
    fresh = requests.post(f"{sim.base_url}/auth/jwt/refresh/", json=tokens).json()["access"]
    response = requests.get(f"{sim.base_url}{LIST}", headers={"Authorization": f"Bearer {fresh}"})
    assert response.status_code == 200


@pytest.mark.usefixtures("local_servers")
def test_rotating_refresh_tokens(http: requests.Session) -> None:
    config = SimulatorConfig(customers=5, users={"u": "p"}, rotate_refresh_tokens=True)
    with XivaSimulator(config) as sim:
        first = login(sim, "u", "p")
        url = f"{sim.base_url}/auth/jwt/refresh/"
        second = http.post(url, json={"refresh": first["refresh"]}).json()
        assert set(second) == {"access", "refresh"}
        assert http.post(url, json={"refresh": first["refresh"]}).status_code == 401
        assert http.post(url, json={"refresh": second["refresh"]}).status_code == 200


# -- customer list ---------------------------------------------------------------------------------


def test_array_list_headers_limit_clamp_and_offset(
    sim: XivaSimulator, authed: requests.Session
) -> None:
    ordered = sim.customer_ids()
    response = get(authed, sim, LIST, limit=500, ordering="lastUpdate,id")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 50  # clamped
    assert response.headers["X-Total-Count"] == "2000"
    assert response.headers["X-Result-Count"] == "50"
    assert [c["id"] for c in body] == ordered[:50]

    page = get(authed, sim, LIST, limit=7, offset=1995).json()
    assert [c["id"] for c in page] == ordered[1995:]
    assert get(authed, sim, LIST, offset=5000).json() == []
    assert len(get(authed, sim, LIST.rstrip("/")).json()) == 20  # default page size


def test_paging_walks_every_customer_once_in_stable_order(
    sim: XivaSimulator, authed: requests.Session
) -> None:
    seen: list[str] = []
    for offset in range(0, 2000, 50):
        page = get(authed, sim, LIST, limit=50, offset=offset, ordering="lastUpdate,id").json()
        seen.extend(c["id"] for c in page)
    assert seen == sim.customer_ids()
    keys = [(parse_ts(sim.customer(cid)["lastUpdate"]), cid) for cid in seen]
    assert keys == sorted(keys)
    again = get(authed, sim, LIST, limit=50, offset=650, ordering="lastUpdate,id").json()
    assert [c["id"] for c in again] == seen[650:700]


def test_drf_list_shape_with_absolute_next_urls(
    sim: XivaSimulator, authed: requests.Session
) -> None:
    sim.set_list_shape("drf")
    first = get(authed, sim, LIST, limit=40, ordering="lastUpdate,id")
    body = first.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], body["previous"], len(body["results"])) == (2000, None, 40)
    assert body["next"].startswith(sim.base_url + LIST)
    assert "offset=40" in body["next"] and "ordering=lastUpdate%2Cid" in body["next"]

    second = authed.get(body["next"]).json()
    assert [c["id"] for c in second["results"]] == sim.customer_ids()[40:80]
    assert second["previous"] is not None and "offset" not in second["previous"]

    last = get(authed, sim, LIST, limit=50, offset=1980).json()
    assert (last["next"], len(last["results"])) == (None, 20)


def test_last_update_filter(sim: XivaSimulator, authed: requests.Session) -> None:
    stamps = sorted(parse_ts(c["lastUpdate"]) for c in all_customers(sim))
    cut = stamps[1500]
    expected = sum(1 for s in stamps if s >= cut)
    response = get(authed, sim, LIST, **{"lastUpdate.gte": cut.isoformat(), "limit": 50})
    assert int(response.headers["X-Total-Count"]) == expected
    assert all(parse_ts(c["lastUpdate"]) >= cut for c in response.json())
    assert parse_ts(response.json()[0]["lastUpdate"]) == cut  # inclusive

    z_style = cut.strftime("%Y-%m-%dT%H:%M:%SZ")
    response = get(authed, sim, LIST, **{"lastUpdate.gte": z_style})
    assert int(response.headers["X-Total-Count"]) == expected


@pytest.mark.parametrize(
    "params",
    [{"limit": "abc"}, {"limit": "-1"}, {"offset": "-5"}, {"lastUpdate.gte": "yesterday"},
     {"ordering": "-name"}],
)  # fmt: skip
def test_bad_list_parameters_get_a_tmf_400(
    sim: XivaSimulator, authed: requests.Session, params: dict[str, str]
) -> None:
    response = get(authed, sim, LIST, **params)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "reason", "message", "status"}
    assert (body["code"], body["status"]) == ("400", "400")


def test_batch_loads_make_ties_across_page_boundaries(sim: XivaSimulator) -> None:
    stamps = [parse_ts(sim.customer(cid)["lastUpdate"]) for cid in sim.customer_ids()]
    sizes = Counter(stamps)
    assert max(sizes.values()) > 50  # a tie group longer than a page
    boundaries_in_ties = [b for b in range(50, 2000, 50) if stamps[b - 1] == stamps[b]]
    assert boundaries_in_ties


# -- customer detail and 360 -----------------------------------------------------------------------


def test_detail_and_360_views(sim: XivaSimulator, authed: requests.Session) -> None:
    cid = sim.customer_ids()[123]
    detail = get(authed, sim, f"/customerManagement/v4/customer/{cid}/")
    assert detail.status_code == 200
    assert detail.json() == sim.customer(cid)
    assert get(authed, sim, f"/customerManagement/v4/customer/{cid}").json() == detail.json()

    complete = get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/complete/").json()
    assert complete == sim.view_360(cid)
    assert complete["customer"] == detail.json()
    assert set(complete) == {"customer", "financial", "usage", "services"}
    assert set(complete["financial"]) >= {"total_bills", "payment_count", "last_payment_date"}
    assert "usage_summary" in complete["usage"]
    for part in ("financial", "usage", "services"):
        for path in (f"360/{part}/", f"360/{part}"):
            response = get(authed, sim, f"/customerManagement/v4/customers/{cid}/{path}")
            assert response.json() == complete[part]


@pytest.mark.parametrize(
    "path",
    [
        "/customerManagement/v4/customer/00000000-0000-4000-8000-000000000000/",
        "/customerManagement/v4/customers/00000000-0000-4000-8000-000000000000/360/complete/",
        "/customerManagement/v4/customers/nope/360/usage/",
    ],
)
def test_unknown_customer_is_a_tmf_404(
    sim: XivaSimulator, authed: requests.Session, path: str
) -> None:
    response = get(authed, sim, path)
    assert response.status_code == 404
    assert response.json()["code"] == "404"
    assert set(response.json()) == {"code", "reason", "message", "status"}
    with pytest.raises(UnknownCustomerError):
        sim.customer("nope")


def test_population_has_every_quirk_of_the_contract(sim: XivaSimulator) -> None:
    customers = all_customers(sim)
    views = all_views(sim)
    statuses = {c["status"] for c in customers}
    assert {"active", "Active", "ACTIVE", "INACTIVE", "suspended"} <= statuses
    assert {s.lower() for s in statuses} == {"active", "inactive", "suspended"}

    def has_postal(c: dict[str, Any]) -> bool:
        return any(m["mediumType"] == "postalAddress" for m in c["contactMedium"])

    def has_tier(c: dict[str, Any]) -> bool:
        return any(ch["name"] == "loyaltyTier" for ch in c["characteristic"])

    for present in (
        lambda c: "engagedIndividual" in c,
        lambda c: "birthDate" in c.get("engagedIndividual", {}),
        has_postal,
        has_tier,
    ):
        flags = Counter(bool(present(c)) for c in customers)
        assert flags[True] > 1000 and flags[False] > 20

    financial_types = Counter(type(v["financial"]["total_bills"]).__name__ for v in views)
    assert financial_types["str"] > 100 and financial_types["float"] > 1000
    assert all(float(v["financial"]["total_bills"]) >= 0 for v in views)
    dates = [v["financial"]["last_payment_date"] for v in views]
    assert any(d is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    assert any(d is not None and "T" in d for d in dates)
    births = [c["engagedIndividual"]["birthDate"] for c in customers if has_birth(c)]
    assert any(len(b) == 10 for b in births) and any("T" in b for b in births)

    now = datetime.now(UTC)
    ages = [now - parse_ts(c["lastUpdate"]) for c in customers]
    assert max(ages) > timedelta(days=5 * 365) and max(ages) < timedelta(days=6 * 365 + 2)
    assert min(ages) > timedelta(0)


def has_birth(c: dict[str, Any]) -> bool:
    return "birthDate" in c.get("engagedIndividual", {})


def test_population_is_deterministic_from_the_seed(sim: XivaSimulator) -> None:
    # Never started: data only. The same reference time as the session's simulator: built in
    # another hour, a population is the same customers with times an hour later.
    ref = sim.reference_time
    same = XivaSimulator(SimulatorConfig(customers=2000, seed=7, reference_time=ref))
    other = XivaSimulator(SimulatorConfig(customers=2000, seed=8, reference_time=ref))
    assert same.customer_ids() == sim.customer_ids()
    cid = sim.customer_ids()[42]
    assert same.view_360(cid) == sim.view_360(cid)
    assert not set(other.customer_ids()) & set(sim.customer_ids())
    assert all(re.fullmatch(r"[0-9a-f-]{36}", cid) for cid in sim.customer_ids())


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["seconds", "http_date", "zero", "missing"])
def test_429_fault_retry_after_styles(
    sim: XivaSimulator, authed: requests.Session, style: str
) -> None:
    sim.set_faults(
        FaultConfig(kinds=("429",), retry_after=style, retry_after_seconds=3, count=1)  # type: ignore[arg-type]
    )
    sent = datetime.now(UTC)
    throttled = get(authed, sim, LIST, limit=1)
    assert throttled.status_code == 429
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 3 seconds."}
    header = throttled.headers.get("Retry-After")
    if style == "seconds":
        assert header == "3"
    elif style == "http_date":
        assert header is not None and header.endswith("GMT")
        waited = parsedate_to_datetime(header) - sent.replace(microsecond=0)
        assert timedelta(seconds=3) <= waited <= timedelta(seconds=5)
    elif style == "zero":
        assert header == "0"
    else:
        assert header is None
    assert get(authed, sim, LIST, limit=1).status_code == 200  # count=1: only the first fails


def test_503_502_504_500_faults(sim: XivaSimulator, authed: requests.Session) -> None:
    sim.set_faults(FaultConfig(kinds=("503",), retry_after_seconds=2))
    response = get(authed, sim, LIST)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert response.json()["code"] == "503"
    for kind, status in (("502_html", 502), ("504_html", 504)):
        sim.set_faults(FaultConfig(kinds=(kind,)))  # type: ignore[arg-type]
        response = get(authed, sim, LIST)
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.text.lstrip().startswith("<html>")
    sim.set_faults(FaultConfig(kinds=("500",)))
    response = get(authed, sim, LIST)
    assert (response.status_code, response.json()["status"]) == (500, "500")
    sim.clear_faults()
    assert get(authed, sim, LIST).status_code == 200


def test_slow_and_drop_faults(sim: XivaSimulator, authed: requests.Session) -> None:
    sim.set_faults(FaultConfig(kinds=("slow",), slow_seconds=0.3, count=1))
    started = time.monotonic()
    assert get(authed, sim, LIST, limit=1).status_code == 200
    assert time.monotonic() - started >= 0.3

    sim.set_faults(FaultConfig(kinds=("drop",), count=1))
    with pytest.raises(requests.ConnectionError):
        get(authed, sim, LIST, limit=1)
    assert get(authed, sim, LIST, limit=1).status_code == 200
    assert sim.counters()["by_endpoint"]["customer_list"] == {200: 2, "drop": 1}


def test_swapped_fault_answers_with_another_customers_record(
    sim: XivaSimulator, authed: requests.Session
) -> None:
    cid = sim.customer_ids()[0]
    sim.set_faults(
        FaultConfig(kinds=("swapped",), count=2, paths={"customer_360", "customer_list"})
    )
    listed = get(authed, sim, LIST, limit=5)  # not about one customer: answered normally
    assert listed.status_code == 200 and listed.json() == all_customers(sim)[:5]
    swapped = get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/complete/")
    assert swapped.status_code == 200
    other = swapped.json()["customer"]["id"]
    assert other != cid and swapped.json() == sim.view_360(other)
    again = get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/complete/")
    assert again.json() == sim.view_360(cid)  # count=2 spent: the list took one


def test_fault_count_paths_and_seeded_rate(sim: XivaSimulator, authed: requests.Session) -> None:
    cid = sim.customer_ids()[0]
    sim.set_faults(FaultConfig(kinds=("503",), count=2, paths={"customer_360"}))
    assert get(authed, sim, LIST).status_code == 200  # not a faulted endpoint
    assert get(authed, sim, f"/customerManagement/v4/customer/{cid}/").status_code == 200
    path360 = f"/customerManagement/v4/customers/{cid}/360/complete/"
    assert [get(authed, sim, path360).status_code for _ in range(3)] == [503, 503, 200]

    sim.set_faults(FaultConfig(kinds=("503",), paths=["/customerManagement/v4/customers/"]))
    assert get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/usage/").status_code == 503
    assert get(authed, sim, LIST).status_code == 200

    def run() -> list[int]:
        sim.set_faults(FaultConfig(rate=0.3, kinds=("503", "429"), seed=5))
        return [get(authed, sim, LIST, limit=1).status_code for _ in range(40)]

    first = run()
    assert run() == first  # same seed, same dice
    assert 3 <= sum(s != 200 for s in first) <= 25
    assert {429, 503} <= set(first)


def test_faults_hit_auth_endpoints_but_never_controls(sim: XivaSimulator) -> None:
    sim.set_faults(FaultConfig(kinds=("503",)))
    create = requests.post(
        f"{sim.base_url}/auth/jwt/create/", json={"username": SIM_USER, "password": SIM_PASSWORD}
    )
    assert create.status_code == 503
    control = requests.get(f"{sim.root_url}/_sim/counters")
    assert control.status_code == 200
    assert control.json()["by_endpoint"]["auth_create"] == {"503": 1}


def test_request_log_records_arrival_times(sim: XivaSimulator, authed: requests.Session) -> None:
    sim.reset_counters()
    sim.set_faults(FaultConfig(kinds=("429",), count=1, retry_after_seconds=1))
    first = get(authed, sim, LIST, limit=1)
    time.sleep(float(first.headers["Retry-After"]))
    assert get(authed, sim, LIST, limit=1).status_code == 200

    log = sim.request_log()
    assert [(r.endpoint, r.status, r.user) for r in log] == [
        ("customer_list", 429, SIM_USER),
        ("customer_list", 200, SIM_USER),
    ]
    assert log[1].at - log[0].at >= 1.0
    assert log[0].at <= time.monotonic()


# -- rate limit ------------------------------------------------------------------------------------


def test_per_user_rate_limit(sim: XivaSimulator, authed: requests.Session) -> None:
    sim.add_user("other", "other-pass")
    other = {"Authorization": f"Bearer {login(sim, 'other', 'other-pass')['access']}"}
    sim.set_rate_limit(0.5, burst=2)

    statuses = [get(authed, sim, LIST, limit=1).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = get(authed, sim, LIST, limit=1)
    seconds = int(throttled.headers["Retry-After"])
    assert 1 <= seconds <= 2
    expected = f"Request was throttled. Expected available in {seconds} seconds."
    assert throttled.json() == {"detail": expected}
    # another user has a bucket of its own; logging in is never throttled
    response = requests.get(f"{sim.base_url}{LIST}", headers=other, params={"limit": 1})
    assert response.status_code == 200
    login(sim)

    sim.set_rate_limit(None)
    assert get(authed, sim, LIST, limit=1).status_code == 200


# -- clock -----------------------------------------------------------------------------------------


def test_a_skewed_clock_stamps_changes_dates_answers_and_issues_tokens_on_it(
    sim: XivaSimulator, http: requests.Session
) -> None:
    sim.set_clock_skew(-1800)  # Xiva's clock 30 minutes behind this host's
    tokens = login(sim)
    host = datetime.now(UTC)
    assert abs(jwt_payload(tokens["access"])["iat"] - (host.timestamp() - 1800)) <= 2
    http.headers["Authorization"] = f"Bearer {tokens['access']}"
    listed = get(http, sim, LIST, limit=1)  # its token is valid on its own clock
    assert listed.status_code == 200
    served = parsedate_to_datetime(listed.headers["Date"])
    assert abs((served - host).total_seconds() + 1800) <= 2
    (changed,) = sim.update_customers(count=1)
    stamped = parse_ts(sim.customer(changed)["lastUpdate"])
    assert abs((stamped - host).total_seconds() + 1800) <= 2
    assert abs((sim.now() - host).total_seconds() + 1800) <= 2

    answer = requests.post(f"{sim.root_url}/_sim/clock", json={"skew_seconds": 600})
    assert answer.status_code == 200 and answer.json()["skew_seconds"] == 600
    assert sim.clock_skew == 600
    bad = requests.post(f"{sim.root_url}/_sim/clock", json={"skew_seconds": "soon"})
    assert bad.status_code == 400 and "skew_seconds" in bad.json()["detail"]
    sim.reset()
    assert sim.clock_skew == 0


# -- updates ---------------------------------------------------------------------------------------


def test_update_customers_moves_last_update_and_360(
    sim: XivaSimulator, authed: requests.Session
) -> None:
    before = datetime.now(UTC)
    old_views = {cid: sim.view_360(cid) for cid in sim.customer_ids()}
    changed = sim.update_customers(count=3)
    assert len(set(changed)) == 3
    assert sim.customer_ids()[-3:] == sorted(changed)  # same lastUpdate, then by id

    response = get(authed, sim, LIST, **{"lastUpdate.gte": before.isoformat()})
    assert sorted(c["id"] for c in response.json()) == sorted(changed)
    assert response.headers["X-Total-Count"] == "3"
    for cid in changed:
        new, old = sim.view_360(cid), old_views[cid]
        assert parse_ts(new["customer"]["lastUpdate"]) >= before
        assert int(new["financial"]["payment_count"]) > int(old["financial"]["payment_count"])
        assert float(new["financial"]["total_bills"]) > float(old["financial"]["total_bills"])
        changed_on = new["customer"]["lastUpdate"][:10]
        assert str(new["financial"]["last_payment_date"])[:10] == changed_on
        remote = get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/complete/").json()
        assert remote == new

    at = datetime(2030, 1, 1, tzinfo=UTC)
    target = sim.customer_ids()[0]
    assert sim.update_customers(ids=[target], at=at) == [target]
    assert sim.customer(target)["lastUpdate"].startswith("2030-01-01T00:00:00")
    assert sim.customer_ids()[-1] == target
    with pytest.raises(UnknownCustomerError):
        sim.update_customers(ids=["nope"])
    with pytest.raises(ValueError, match="ids"):
        sim.update_customers()


# -- counters, reset, controls ---------------------------------------------------------------------


def test_counters_by_endpoint_status_and_user(sim: XivaSimulator, authed: requests.Session) -> None:
    cid = sim.customer_ids()[0]
    get(authed, sim, LIST)
    get(authed, sim, f"/customerManagement/v4/customer/{cid}/")
    get(authed, sim, "/customerManagement/v4/customer/missing/")
    get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/complete/")
    get(authed, sim, f"/customerManagement/v4/customers/{cid}/360/usage/")
    requests.get(f"{sim.base_url}{LIST}")  # no credentials
    requests.get(f"{sim.root_url}/_sim/counters")

    counters = sim.counters()
    assert counters["total"] == 7  # login of `authed` + 6; the control call is not in the total
    assert counters["by_endpoint"] == {
        "auth_create": {200: 1},
        "customer_list": {200: 1, 401: 1},
        "customer_detail": {200: 1, 404: 1},
        "customer_360": {200: 1},
        "customer_360_part": {200: 1},
        "control": {200: 1},
    }
    assert counters["by_user"] == {SIM_USER: 6}
    assert set(ENDPOINTS) < set(counters["by_endpoint"]) | {"auth_refresh"}

    sim.reset_counters()
    assert sim.counters() == {"total": 0, "by_endpoint": {}, "by_user": {}}
    assert sim.request_log() == []


def test_reset_restores_the_initial_state(sim: XivaSimulator, http: requests.Session) -> None:
    port, ids = sim.port, sim.customer_ids()
    sim.add_user("temp", "temp-pass")
    sim.update_customers(count=10)
    sim.set_faults(FaultConfig(kinds=("503",)))
    sim.set_rate_limit(1, 1)
    sim.set_list_shape("drf")
    sim.set_token_lifetimes(access=5)

    sim.reset()

    assert (sim.port, sim.customer_ids()) == (port, ids)
    assert sim.counters()["total"] == 0
    tokens = login(sim)
    assert jwt_payload(tokens["access"])["exp"] - time.time() > 200
    headers = {"Authorization": f"Bearer {tokens['access']}"}
    responses = [http.get(f"{sim.base_url}{LIST}", headers=headers) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert isinstance(responses[0].json(), list)
    denied = http.post(
        f"{sim.base_url}/auth/jwt/create/", json={"username": "temp", "password": "temp-pass"}
    )
    assert denied.status_code == 401


def test_http_control_endpoints(sim: XivaSimulator, authed: requests.Session) -> None:
    root = f"{sim.root_url}/_sim"
    response = requests.post(f"{root}/faults", json={"kinds": ["503"], "count": 1})
    assert response.status_code == 200 and response.json()["faults"]["count"] == 1
    assert get(authed, sim, LIST).status_code == 503
    requests.post(f"{root}/faults", json={"kinds": ["503"]})
    assert requests.delete(f"{root}/faults").status_code == 200
    assert get(authed, sim, LIST).status_code == 200

    assert requests.post(f"{root}/rate-limit", json={"per_second": 0.1, "burst": 1}).ok
    assert [get(authed, sim, LIST).status_code for _ in range(2)] == [200, 429]
    assert requests.post(f"{root}/rate-limit", json={"per_second": None}).ok

    updated = requests.post(f"{root}/update", json={"count": 2}).json()["ids"]
    assert sim.customer_ids()[-2:] == sorted(updated)
    at = requests.post(
        f"{root}/update", json={"ids": updated[:1], "at": "2031-05-05T00:00:00Z"}
    ).json()
    assert at == {"ids": updated[:1]}
    assert sim.customer(updated[0])["lastUpdate"].startswith("2031-05-05")

    tokens = login(sim)
    assert requests.post(f"{root}/tokens", json={"revoke_refresh": True, "access": 60}).ok
    refreshed = requests.post(f"{sim.base_url}/auth/jwt/refresh/", json=tokens)
    assert refreshed.status_code == 401
    assert jwt_payload(login(sim)["access"])["exp"] - time.time() <= 61

    users = requests.post(f"{root}/users", json={"username": "api", "password": "api-pass"})
    assert "api" in users.json()["users"] and "api-pass" not in users.text
    login(sim, "api", "api-pass")
    assert requests.post(f"{root}/list-shape", json={"shape": "drf"}).ok
    assert "results" in get(authed, sim, LIST).json()

    counters = requests.get(f"{root}/counters").json()
    assert counters["total"] == sim.counters()["total"]
    assert requests.get(f"{root}/log").json()["requests"][0]["endpoint"] == "auth_create"
    assert requests.get(f"{root}/customers").json()["ids"] == sim.customer_ids()

    bad = requests.post(f"{root}/faults", json={"kinds": ["teapot"]})
    assert bad.status_code == 400 and "kinds" in bad.json()["detail"]
    assert requests.post(f"{root}/update", json={"ids": ["nope"]}).status_code == 400
    assert requests.post(f"{root}/update", data="{oops").status_code == 400
    assert requests.get(f"{root}/nothing").status_code == 404

    assert requests.post(f"{root}/reset").json() == {"ok": True}
    assert sim.counters()["total"] == 0
    assert isinstance(get(authed, sim, LIST).json(), list)


# -- server behaviour ------------------------------------------------------------------------------


def test_concurrent_clients_are_counted_exactly(sim: XivaSimulator) -> None:
    access = login(sim)["access"]
    ids = sim.customer_ids()
    sim.reset_counters()

    def worker(n: int) -> list[int]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {access}"
            urls = [
                f"{sim.base_url}/customerManagement/v4/customers/{cid}/360/complete/"
                for cid in ids[n * 25 : (n + 1) * 25]
            ]
            return [session.get(url).status_code for url in urls]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [s for batch in pool.map(worker, range(8)) for s in batch]
    assert statuses == [200] * 200
    assert sim.counters()["by_endpoint"] == {"customer_360": {200: 200}}
    assert sim.counters()["by_user"] == {SIM_USER: 200}


def test_keep_alive_http11(sim: XivaSimulator, authed: requests.Session) -> None:
    first = get(authed, sim, LIST, limit=1)
    assert first.raw.version == 11
    assert first.headers["Content-Length"] == str(len(first.content))


def test_not_running_and_secrets_stay_hidden() -> None:
    sim = XivaSimulator(SimulatorConfig(customers=1, users={"u": "hunter2-secret"}))
    with pytest.raises(SimulatorNotRunningError, match="start"):
        _ = sim.base_url
    assert "hunter2" not in repr(sim) + repr(sim.config) + str(sim.config)
    assert sim.config.passwords() == {"u": "hunter2-secret"}


@pytest.mark.usefixtures("local_servers")
def test_hundred_thousand_customers_start_quickly() -> None:
    started = time.monotonic()
    with XivaSimulator(SimulatorConfig(customers=100_000, seed=3)) as big:
        tokens = login(big, "demo", "demo-pass")
        headers = {"Authorization": f"Bearer {tokens['access']}"}
        response = requests.get(f"{big.base_url}{LIST}", headers=headers, params={"limit": 50})
        assert response.headers["X-Total-Count"] == "100000"
        last = big.customer_ids()[-1]
        detail = requests.get(f"{big.base_url}{LIST}{last}/", headers=headers)
        assert detail.json()["id"] == last
    assert time.monotonic() - started < 10


# -- command line ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("subprocesses")
@pytest.mark.parametrize("module", [["xiva_source.simulator"], ["xiva_source", "simulator"]])
def test_cli_starts_serves_and_stops_on_sigint(module: list[str]) -> None:
    command = [sys.executable, "-m", *module, "--port", "0", "--customers", "30", "--seed", "1"]
    command += ["--user", "cli:cli-pass", "--list-shape", "drf", "--rate-limit", "100"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/api)", first_line)
        assert match, first_line + (process.stderr.read() if process.stderr else "")
        base = match.group(1)
        tokens = requests.post(
            f"{base}/auth/jwt/create/", json={"username": "cli", "password": "cli-pass"}
        ).json()
        body = requests.get(
            f"{base}{LIST}", headers={"Authorization": f"Bearer {tokens['access']}"}
        ).json()
        assert body["count"] == 30
        assert "cli-pass" not in first_line + process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    from xiva_source.cli import simulator_main as cli

    assert cli(["--user", "no-colon"]) == 2
    assert "NAME:PASSWORD" in capsys.readouterr().err
    assert cli(["--fault-kinds", "429,teapot"]) == 2
    assert "teapot" in capsys.readouterr().err
    assert cli(["--customers", "-1", "--port", "0"]) == 2
    assert "customers" in capsys.readouterr().err


def test_fault_kinds_help_and_docs_name_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """``--fault-kinds``'s help and docs/simulator.md's table come from / agree with one list."""
    from xiva_source.cli import simulator_main
    from xiva_source.simulator.config import FAULT_KINDS

    assert simulator_main(["--help"]) == 0
    help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines at commas too
    assert f"among{','.join(FAULT_KINDS)}" in help_text
    docs = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()
    table = docs.split("| kind | response |", 1)[1].split("\n\n", 1)[0]
    documented = set(
        re.findall(r"`([\w]+)`", "\n".join(r.split("|")[1] for r in table.splitlines()[2:]))
    )
    assert documented == set(FAULT_KINDS)
