"""A server that echoes the login body in its 400 never makes the password or a token print.

The echo server is real (loopback HTTP): it answers ``POST /auth/jwt/create/`` with ``400`` and a
body quoting the request raw, as escaped JSON, URL-encoded and in free text. The password must not
reach the materialize summary line, the CLI's error boundary (a subprocess), any log record or an
exception's ``str``/``repr``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.support.feast import FeastEnv
from tests.support.tiers import service
from tests.support.xiva_source.encodings import carries_base64
from xiva_source.cli import main
from xiva_source.redaction import redact
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.auth import TokenPair
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaError

CORE = "Zq9echo"
"""A string in every form of the password (JSON and URL encoding leave it alone)."""
PASSWORD = CORE + '"pa ss/wörd%&'


class _EchoHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        password = json.loads(body).get("password", "")
        answer = {
            "detail": f"Invalid login body: {body}",  # raw JSON inside a string: escaped JSON
            "non_field_errors": [f"user sent {password} (form: password={quote_plus(password)})"],
            "echo": body,
            "note": f"{password!r} / {quote(password, safe='')}",
        }
        data = json.dumps(answer).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
@service("http")
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo_env(echo_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XIVA_API_BASE_URL", echo_url)
    monkeypatch.setenv("XIVA_API_USERNAME", "echo-user")
    monkeypatch.setenv("XIVA_API_PASSWORD", PASSWORD)
    return echo_url


def _texts_of(error: BaseException) -> list[str]:
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), repr(seen.args)]
        texts += [str(v) for v in vars(seen).values()]
        seen = seen.__cause__ or seen.__context__
    return texts


def test_the_echo_server_really_echoes_the_password(echo_url: str) -> None:
    import requests

    body = {"username": "u", "password": PASSWORD}
    answer = requests.post(f"{echo_url}/auth/jwt/create/", json=body, timeout=5).text
    assert CORE in answer and '\\"' in answer and quote_plus(PASSWORD) in answer


def test_client_errors_and_log_records_mask_the_echoed_password(
    echo_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = XivaClient(requests_per_second=0, max_attempts=1)
    with pytest.raises(XivaError) as info:
        client.get_customer("C00001")
    texts = _texts_of(info.value) + [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records] + [repr(client)]
    assert any("400" in t for t in texts)
    for text in texts:
        assert CORE not in text, text


def test_the_materialize_summary_line_masks_the_echoed_password(
    feast_repo: Path,
    feast_env: FeastEnv,
    echo_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("XIVA_API_BASE_URL", echo_env)  # feast_env pointed it at the simulator
    monkeypatch.setenv("XIVA_API_PASSWORD", PASSWORD)
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")

    code = main(["materialize", "--repo", str(feast_repo), "--no-progress"])

    captured = capsys.readouterr()
    assert code == 1
    assert "materialize failed" in captured.err
    for text in [captured.out, captured.err] + [r.getMessage() for r in caplog.records]:
        assert CORE not in text, text


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_the_cli_error_boundary_masks_the_echoed_password(
    echo_env: str, tmp_path: Path, debug: list[str]
) -> None:
    # A fresh process: the password is registered when the CLI loads the settings. --debug
    # prints the traceback and every DEBUG record of the project: masked too.
    proc = subprocess.run(
        [sys.executable, "-m", "xiva_source", *debug, "refresh", "C00001"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0 and proc.stderr.strip(), proc.stderr
    assert ("Traceback" in proc.stderr) == bool(debug)
    assert CORE not in proc.stderr + proc.stdout, proc.stderr


def test_any_logger_s_records_print_masked_on_the_cli_s_stderr(
    echo_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from xiva_source.cli.app import configure_logging
    from xiva_source.settings import load_settings

    load_settings()  # registers XIVA_API_PASSWORD, as every command does first
    configure_logging("INFO")
    try:
        logging.getLogger("some.third.party").warning("connecting with %s", {"pw": PASSWORD})
        try:
            raise RuntimeError(f"login failed for {PASSWORD}")
        except RuntimeError:
            logging.getLogger("another").exception("boom")
    finally:
        configure_logging()
    err = capsys.readouterr().err
    assert "connecting with" in err and "RuntimeError" in err and CORE not in err, err


def test_issued_tokens_are_masked_by_value_in_free_text() -> None:
    access, refresh = "opaque-access-" + "x" * 20, "opaque-refresh-" + "y" * 20
    TokenPair.from_tokens(access, refresh)  # issued: registered
    text = f"server said: access {access} then {json.dumps({'r': refresh})} {quote(refresh)}"
    assert redact(text).count("***") == 3
    assert "opaque" not in redact(text)


def test_stored_pending_reasons_mask_the_password(pg_url: str) -> None:
    import datetime as dt

    from xiva_source.dwh.pending import read_pending, remember_pending
    from xiva_source.redaction import register_secret

    register_secret(PASSWORD)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    reason = f"360 fetch failed: server said {json.dumps({'echo': PASSWORD})}"
    remember_pending(pg_url, "pending_x3", "customer_source", {"a": reason, "b": reason}, now=now)
    stored = read_pending(pg_url, "pending_x3", "customer_source")
    assert set(stored) == {"a", "b"}
    assert all(CORE not in p.reason and "***" in p.reason for p in stored.values())


ECHOED_PASSWORD = "Echo64/pass+wörd?"
"""Its base64 forms hold '+' and '/' (the standard and URL-safe alphabets differ)."""


@pytest.mark.usefixtures("subprocesses")
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_login_400_echoing_the_password_base64_encoded_prints_none_of_it(
    xiva_env: XivaSimulator, applied_feast_repo: Path, tmp_path: Path, debug: list[str]
) -> None:
    from xiva_source.simulator import FaultConfig

    xiva_env.add_user("echo-user", ECHOED_PASSWORD)
    xiva_env.set_faults(FaultConfig(kinds=("login_echo",), paths={"auth_create"}))
    import requests

    login = {"username": "echo-user", "password": ECHOED_PASSWORD}
    answer = requests.post(f"{xiva_env.base_url}/auth/jwt/create/", json=login, timeout=5)
    assert answer.status_code == 400 and carries_base64(answer.text, ECHOED_PASSWORD)

    env = dict(os.environ, XIVA_API_USERNAME="echo-user", XIVA_API_PASSWORD=ECHOED_PASSWORD)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xiva_source",
            *debug,
            "refresh",
            xiva_env.customer_ids()[0],
            "--repo",
            str(applied_feast_repo),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    output = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "400" in output, output
    assert ("Traceback" in output) == bool(debug)
    assert ECHOED_PASSWORD not in output and not carries_base64(output, ECHOED_PASSWORD), output
