"""Signatures on upload certificates and result links, and the access key id shown beside them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# Looks like an Alibaba Cloud AccessKey id so clients pass it along unchanged; it grants nothing.
OSS_ACCESS_KEY_ID = "LTAI5tEmulatorNotARealKey"


class Signer:
    """HMAC signatures for upload policies and result links, with a secret that lives per emulator."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def sign(self, text: str) -> str:
        mac = hmac.new(self._secret, text.encode("utf-8"), hashlib.sha1).digest()
        return base64.b64encode(mac).decode("ascii")

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)
