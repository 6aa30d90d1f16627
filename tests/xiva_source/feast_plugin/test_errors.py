"""The online store's error names the right fix: a refused command is not "is Redis running?"."""

from __future__ import annotations

import redis as redis_lib

from xiva_source.feast_plugin.errors import REFUSED_FIX, OnlineStoreError
from xiva_source.feast_plugin.foreign_errors import project_error_for


def test_a_command_redis_refused_gets_the_refusal_fix(redis_url: str, redis_ns: str) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    try:
        client.eval("return unpack({...}, 1, 10000)", 0)  # Lua's unpack limit, as a bug hits it
    except redis_lib.ResponseError as e:
        error = OnlineStoreError.failed(e)
        translated = project_error_for(e)
    finally:
        client.close()
    assert "too many results to unpack" in str(error)
    assert error.fix == REFUSED_FIX and "Check REDIS_URL" not in str(error)
    assert translated is not None and translated.fix == REFUSED_FIX


def test_an_unreachable_redis_keeps_the_connection_fix() -> None:
    client = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis_lib.ConnectionError as e:
        error = OnlineStoreError.failed(e)
    assert error.fix == OnlineStoreError.default_fix
