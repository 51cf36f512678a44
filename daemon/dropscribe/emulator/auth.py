"""API-key checks on the DashScope endpoints (the OSS stand-ins check signatures instead)."""

from __future__ import annotations

import hashlib
from collections.abc import Set

from dropscribe.emulator.http_messages import HttpRequest
from dropscribe.emulator.protocol import ApiError


def authorize(request: HttpRequest, accepted_keys: Set[str] | None) -> str:
    """A digest of the request's Bearer key; raises 401 ``InvalidApiKey`` when it is missing or refused.

    ``accepted_keys`` None accepts any non-empty key.
    """
    scheme, _, key = (request.header("Authorization") or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "InvalidApiKey")
    if accepted_keys is not None and key not in accepted_keys:
        raise ApiError(401, "InvalidApiKey")
    # Rate windows are keyed by this digest so no structure holds the key itself.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
