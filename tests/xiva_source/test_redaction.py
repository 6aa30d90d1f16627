"""Secret masking (bodies, URLs, headers, HTML pages) and errors that pickle: pure, no service."""

from __future__ import annotations

import base64
import html
import json
import pickle
from urllib.parse import quote, quote_plus

from tests.support.xiva_source.encodings import carries_base64
from xiva_source.dwh.errors import DwhError
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.redaction import (
    MAX_TRANSIENT_SECRETS,
    body_excerpt,
    redact,
    register_secret,
    register_url_secret,
)
from xiva_source.xiva_api.errors import XivaError, XivaRateLimitError


def test_redaction_of_bodies_urls_and_headers() -> None:
    body = (
        '{"access": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "refresh": "r-123", "detail": "ok"}'
    )
    excerpt = body_excerpt(body)
    assert excerpt is not None and "eyJ" not in excerpt and "r-123" not in excerpt
    assert '"detail": "ok"' in excerpt
    assert redact("password=hunter2&user=x") == "password=***&user=x"
    assert redact("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer ***"
    assert redact("redis://admin:pw@host:6379") == "redis://admin:***@host:6379"
    err = XivaError("failed", url="https://bob:pw@xiva/api?x=1", body=body)
    assert "pw@" not in str(err) and "eyJ" not in str(err)


def test_html_bodies_become_short_visible_text() -> None:
    page = "<html><head><script>var t='eyJa.eyJb.c';</script></head><body><h1>502 Bad Gateway</h1>"
    page += "<p>nginx</p>" + "<div>padding</div>" * 100 + "</body></html>"
    excerpt = body_excerpt(page)
    assert excerpt is not None and excerpt.startswith("502 Bad Gateway nginx")
    assert len(excerpt) <= 200 and "<" not in excerpt and excerpt.endswith("...")


def test_errors_pickle_with_their_attributes() -> None:
    err = XivaRateLimitError("slow down", retry_after=5.0, status=429, body="x", url="u")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is XivaRateLimitError and str(copy) == str(err)
    assert (copy.retry_after, copy.status, copy.body, copy.url) == (5.0, 429, "x", "u")
    store_err = AllSourcesFailedError({"xiva": err, "dwh": DwhError("connection refused")})
    assert "every source failed" in str(store_err) and "FEATURE_STORE_DATA_SOURCE" in str(store_err)
    assert pickle.loads(pickle.dumps(store_err)).source == "xiva+dwh"


def test_registered_secrets_are_masked_in_every_form_and_only_as_whole_words() -> None:
    secret = 'Kx7reg"is tered/ö%'
    register_secret(secret)
    forms = [secret, json.dumps(secret), json.dumps(json.dumps(secret)), repr(secret)]
    forms += [quote(secret, safe=""), quote_plus(secret), json.dumps(secret, ensure_ascii=False)]
    for form in forms:
        assert "Kx7" not in redact(f"free text {form}, end"), form
    register_secret("abc")  # too short to mask without hiding prose: ignored
    assert redact("abc") == "abc"
    register_url_secret("postgresql://etl:Pgreg99@db/x")
    assert redact("postgresql://u@db Pgreg99 Pgreg99x") == "postgresql://u@db *** Pgreg99x"


def test_escaped_json_fields_are_masked_without_a_registry() -> None:
    text = json.dumps({"detail": json.dumps({"username": "u", "password": "p9 q,r"})})
    assert "p9" not in redact(text) and '\\"username\\": \\"u\\"' in redact(text)


def test_transient_secrets_are_bounded_and_permanent_ones_stay() -> None:
    register_secret("Perm4nent-value")
    tokens = [f"tok{i:03d}-opaque-value" for i in range(MAX_TRANSIENT_SECRETS + 1)]
    for token in tokens:
        register_secret(token, transient=True)
    assert redact(tokens[0]) == tokens[0]  # the oldest token was forgotten
    assert redact(tokens[-1]) == "***" and redact("Perm4nent-value") == "***"


def _reversible_forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    forms = {
        "base64": base64.b64encode(raw).decode(),
        "base64 unpadded": base64.b64encode(raw).decode().rstrip("="),
        "urlsafe base64": base64.urlsafe_b64encode(raw).decode(),
        "urlsafe base64 unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "base32": base64.b32encode(raw).decode(),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "every byte percent-encoded": "".join(f"%{b:02X}" for b in raw),
        "html": html.escape(secret),
        "html references": "".join(f"&#{ord(c)};" for c in secret),
    }
    for prefix in ("u:", "us:", "use:", '{"password": "'):
        forms[f"base64 of {prefix!r} + secret"] = base64.b64encode(prefix.encode() + raw).decode()
        forms[f"urlsafe base64 of {prefix!r} + secret"] = base64.urlsafe_b64encode(
            prefix.encode() + raw + b'"}'
        ).decode()
    return forms


def test_registered_secrets_are_masked_in_their_reversible_encodings() -> None:
    secret = "B64sec/ret+pässw0rd?"
    register_secret(secret)
    for name, form in _reversible_forms(secret).items():
        text = redact(f"login refused: {form}, try again")
        assert form not in text, name
        assert "***" in text and text.startswith("login refused: "), name
        assert not carries_base64(text, secret), name


def test_base64_masking_leaves_unrelated_base64_alone() -> None:
    register_secret("An0ther-secret-value")
    other = base64.b64encode(b"nothing secret in here, just some longer text").decode()
    assert redact(f"payload {other} end") == f"payload {other} end"
    assert redact("plain prose mentions nothing") == "plain prose mentions nothing"
