"""``feast serve`` with Feast's own authorization (docs/operations.md, "Security"): the
repository's ``feature_store.yaml`` gets an ``auth: {type: oidc}`` block whose discovery document
and signing keys this test serves on loopback; the feature server starts, refuses a request
without a token (401) and one with a token signed by another key, and answers a request with a
token the identity provider signed, reading the online store through the project's plugin, over
mutual TLS to Redis (the async client ``feast serve`` reads with is built from the settings)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.feast import FeastEnv
from tests.support.tls import RedisTlsServer

CLIENT_ID = "loyalty-feature-server"


@dataclass
class Idp:
    """A minimal OIDC provider on loopback: discovery document and JWKS, one signing key."""

    url: str
    private_key: Any

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def token(self, *, key: Any = None, user: str = "ml-service") -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": user,
            "preferred_username": user,
            "iat": now,
            "exp": now + 300,
            "resource_access": {CLIENT_ID: {"roles": ["reader"]}},
        }
        return jwt.encode(
            claims, key or self.private_key, algorithm="RS256", headers={"kid": "test-key"}
        )


def _rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def idp() -> Iterator[Idp]:
    from jwt.algorithms import RSAAlgorithm

    key = _rsa_key()
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "test-key", "use": "sig", "alg": "RS256"})
    documents: dict[str, dict[str, Any]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/.well-known/openid-configuration"] = {
        "issuer": base,
        "authorization_endpoint": f"{base}/auth",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks",
    }
    documents["/jwks"] = {"keys": [jwk]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Idp(base, key)
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def feature_server(
    feast_repo: Path, feast_env: FeastEnv, idp: Idp, redis_mtls: RedisTlsServer
) -> Iterator[str]:
    """``feast serve`` on a free port with the ``oidc`` block, its online store the mutual-TLS
    Redis (one customer refreshed into it first); its base URL."""
    from xiva_source.jobs.refresh import refresh_customer

    files = redis_mtls.files
    for name, value in {
        "REDIS_URL": redis_mtls.url,
        "REDIS_TLS_CA_FILE": str(files.ca),
        "REDIS_TLS_CERT_FILE": str(files.client_cert),
        "REDIS_TLS_KEY_FILE": str(files.client_key),
    }.items():
        feast_env.monkeypatch.setenv(name, value)
    refresh_customer(feast_env.dwh.shared_ids[0], repo_path=feast_repo)
    path = feast_repo / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["auth"] = {
        "type": "oidc",
        "client_id": CLIENT_ID,
        "auth_discovery_url": idp.discovery_url,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = _free_port()
    feast = Path(sys.executable).parent / "feast"
    process = subprocess.Popen(
        [str(feast), "-c", str(feast_repo), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--no-access-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # gunicorn's workers: one process group, ended together
        env=os.environ.copy(),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"feast serve exited {process.returncode}: {err[-2000:]}")
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("feast serve did not answer /health in 120 s")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        redis_mtls.delete_matching(f"*{config['project']}*")


def test_feast_serve_with_oidc_refuses_requests_without_a_valid_token(
    feature_server: str, feast_env: FeastEnv, idp: Idp
) -> None:
    customer_id = feast_env.dwh.shared_ids[0]
    body = {
        "features": ["customer_features:city"],
        "entities": {"customer_id": [customer_id]},
    }
    url = f"{feature_server}/get-online-features"

    anonymous = requests.post(url, json=body, timeout=30)
    assert anonymous.status_code in (401, 403), anonymous.text

    forged = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {idp.token(key=_rsa_key())}"},
        timeout=30,
    )  # fmt: skip
    assert forged.status_code in (401, 403), forged.text

    signed = requests.post(
        url, json=body, headers={"Authorization": f"Bearer {idp.token()}"}, timeout=30
    )
    assert signed.status_code == 200, signed.text
    answer = signed.json()
    assert answer["metadata"]["feature_names"] == ["customer_id", "city"]
    city = answer["results"][1]
    assert city["statuses"] == ["PRESENT"] and city["values"][0], answer  # read over mTLS
