"""Redis over TLS through ``connect_redis``: a single node, mutual TLS, a Cluster, the async twin,
and every way it must refuse (wrong CA, no client certificate, ``redis://`` at a TLS port,
downgrades), each with a problem and a fix. Real TLS servers (``tests/support/tls.py``);
verification is never weakened."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from tests.support.tls import RedisTlsServer, TlsCluster, TlsFiles, TlsSentinel
from xiva_source.cli import main as xiva_main
from xiva_source.errors import ConfigurationError
from xiva_source.feast_plugin.foreign_errors import project_error_for
from xiva_source.redis_client import RedisTls, connect_redis, connect_redis_async, tls_hint


def _tls(files: TlsFiles, *, ca: Path | None = None, client: bool = False) -> RedisTls:
    return RedisTls(
        ca_file=ca or files.ca,
        cert_file=files.client_cert if client else None,
        key_file=files.client_key if client else None,
    )


def test_a_single_node_over_tls_verified_by_the_ca(redis_tls: RedisTlsServer) -> None:
    client = connect_redis(redis_tls.url, tls=_tls(redis_tls.files))
    assert isinstance(client, redis.Redis)
    try:
        client.set("tls-test:k", "v", ex=30)
        assert client.get("tls-test:k") == b"v"
        conn = client.connection_pool.get_connection()
        try:
            assert type(conn).__name__ == "SSLConnection"
            assert getattr(conn, "check_hostname", None) is True
        finally:
            client.connection_pool.release(conn)
    finally:
        client.close()


def test_the_async_twin_over_tls(redis_tls: RedisTlsServer) -> None:
    async def roundtrip() -> bytes | None:
        client = connect_redis_async(redis_tls.url, tls=_tls(redis_tls.files))
        try:
            await client.set("tls-test:async", "a", ex=30)
            value: bytes | None = await client.get("tls-test:async")
            return value
        finally:
            await client.aclose()

    assert asyncio.run(roundtrip()) == b"a"


def test_a_wrong_ca_is_refused_with_a_clear_problem_and_fix(redis_tls: RedisTlsServer) -> None:
    client = connect_redis(redis_tls.url, tls=_tls(redis_tls.files, ca=redis_tls.files.other_ca))
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError) as info:
        client.ping()
    assert time.monotonic() - started < 2  # a refused certificate is not retried
    client.close()
    error = project_error_for(info.value)
    assert error is not None
    assert "certificate verify failed" in error.problem
    assert "REDIS_TLS_CA_FILE" in (error.fix or "")
    assert "never turned off" in (error.fix or "")


def test_the_system_trust_store_does_not_know_a_private_ca(redis_tls: RedisTlsServer) -> None:
    # No REDIS_TLS_CA_FILE: verified against the system's CAs, which did not sign this server.
    client = connect_redis(redis_tls.url)
    with pytest.raises(redis.ConnectionError) as info:
        client.ping()
    client.close()
    hint = tls_hint(info.value)
    assert hint is not None and "REDIS_TLS_CA_FILE" in hint[1]


def test_plain_redis_at_a_tls_port_fails_in_seconds_saying_use_rediss(
    redis_tls: RedisTlsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = xiva_main(["usage", "--redis-url", redis_tls.plain_url])
    # redis-py's three retries with jittered backoff (a reset may be a passing fault elsewhere)
    assert time.monotonic() - started < 12
    err = capsys.readouterr().err
    assert code == 1
    assert "error:" in err and "fix:" in err and "rediss://" in err
    assert "Traceback" not in err


def test_mutual_tls_needs_the_client_certificate(redis_mtls: RedisTlsServer) -> None:
    without = connect_redis(redis_mtls.url, tls=_tls(redis_mtls.files))
    with pytest.raises(redis.ConnectionError) as info:
        without.ping()
    without.close()
    error = project_error_for(info.value)
    assert error is not None
    assert "REDIS_TLS_CERT_FILE" in (error.fix or "")

    client = connect_redis(redis_mtls.url, tls=_tls(redis_mtls.files, client=True))
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_nothing_downgrades_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    with pytest.raises(ConfigurationError, match="rediss://") as info:
        connect_redis("redis://127.0.0.1:6379", tls=RedisTls(ca_file=ca))
    assert info.value.setting == "REDIS_URL"
    for option in ("ssl_cert_reqs=none", "ssl_check_hostname=false"):
        with pytest.raises(ConfigurationError, match="verification off"):
            connect_redis(f"rediss://h:6380/0?{option}", tls=RedisTls(ca_file=ca))
    with pytest.raises(ConfigurationError, match="REDIS_TLS_KEY_FILE"):
        connect_redis("rediss://h:6380", tls=RedisTls(ca_file=ca, cert_file=ca))
    with pytest.raises(ConfigurationError, match="REDIS_TLS_CA_FILE names") as missing:
        connect_redis("rediss://:pw-secret@h:6380", tls=RedisTls(ca_file=tmp_path / "nope.pem"))
    assert "pw-secret" not in str(missing.value)


def test_a_cluster_over_tls(redis_tls_cluster: TlsCluster) -> None:
    files = redis_tls_cluster.files
    client = connect_redis(
        redis_tls_cluster.url, redis_type="redis_cluster", tls=_tls(files, client=True)
    )
    assert isinstance(client, redis.RedisCluster)
    try:
        keys = [f"tls-cluster-test:{i}" for i in range(30)]
        for key in keys:
            client.set(key, key, ex=30)
        assert [client.get(k) for k in keys] == [k.encode() for k in keys]
        assert len({client.get_node_from_key(k).name for k in keys}) == 3  # every primary
    finally:
        client.close()


def test_a_cluster_with_a_wrong_ca_is_refused(redis_tls_cluster: TlsCluster) -> None:
    files = redis_tls_cluster.files
    with pytest.raises((redis.RedisError, redis.exceptions.RedisClusterException)) as info:
        connect_redis(
            redis_tls_cluster.url, redis_type="redis_cluster", tls=_tls(files, ca=files.other_ca)
        )
    error = project_error_for(info.value)
    assert error is not None
    assert "certificate verify failed" in error.problem
    assert "REDIS_TLS_CA_FILE" in (error.fix or "")


def test_sentinels_and_their_primary_over_tls(redis_tls_sentinel: TlsSentinel) -> None:
    tls = _tls(redis_tls_sentinel.files, client=True)
    client = connect_redis(
        redis_tls_sentinel.url,
        redis_type="redis_sentinel",
        sentinel_master=redis_tls_sentinel.master,
        tls=tls,
    )
    try:
        client.set("tls-sentinel-test:k", "v", ex=30)
        assert client.get("tls-sentinel-test:k") == b"v"
    finally:
        client.close()

    async def roundtrip() -> bytes | None:
        aclient = connect_redis_async(
            redis_tls_sentinel.url,
            redis_type="redis_sentinel",
            sentinel_master=redis_tls_sentinel.master,
            tls=tls,
        )
        try:
            value: bytes | None = await aclient.get("tls-sentinel-test:k")
            return value
        finally:
            await aclient.aclose()

    assert asyncio.run(roundtrip()) == b"v"
