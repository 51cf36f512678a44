"""A bearer token added inside httpx, per request, for the backends that authenticate with one."""

from __future__ import annotations

from collections.abc import Generator

import httpx


class BearerAuth(httpx.Auth):
    """No local variable of ours holds the header, so a traceback rendered with its frames' locals shows
    no key, and only the requests given this auth carry it (never an upload host or a result link)."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"
