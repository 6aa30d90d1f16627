"""Does a text still carry a secret in a reversible encoding? (the redaction tests' oracle)."""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["carries_base64"]

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")


def carries_base64(text: str, secret: str) -> bool:
    """Whether any run of base64 in ``text``, decoded from any of its first four characters in
    either alphabet, holds ``secret`` (so ``base64("user:" + secret)`` counts too)."""
    for run in _BASE64_RUN.findall(text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            for cut in range(4):
                piece = run[cut:].rstrip("=")
                try:
                    decoded = decode(piece + "=" * (-len(piece) % 4))
                except (ValueError, binascii.Error):
                    continue
                if secret.encode() in decoded:
                    return True
    return False
