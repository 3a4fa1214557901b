"""The admin API's bearer token (SENTIMENT_ADMIN_TOKEN): off (404) while unset, checked in
constant time, and checked before the body is read so a caller without it learns nothing."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from service.errors import NotFound, Unauthorized
from service.http.json_body import StrictJsonRoute
from service.settings import Settings

# Declares the scheme (the Authorize button in /docs); checking is AuthFirstRoute's.
ADMIN_TOKEN = HTTPBearer(
    scheme_name="AdminToken",
    description="SENTIMENT_ADMIN_TOKEN, for POST /admin/model",
    auto_error=False,
)


def check_admin(settings: Settings, authorization: str | None) -> None:
    """404 while the admin API is off; 401 unless ``authorization`` bears its token."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:
        raise NotFound("admin API disabled (set SENTIMENT_ADMIN_TOKEN to enable it)")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized(
            "missing or invalid admin bearer token (Authorization: Bearer <SENTIMENT_ADMIN_TOKEN>)"
        )


class AuthFirstRoute(StrictJsonRoute):
    """Checks the admin token before FastAPI reads and validates the body: a caller
    without the token learns nothing about what the body should hold (401, not 422).
    The route's ``Depends(ADMIN_TOKEN)`` only declares the bearer scheme in OpenAPI."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            check_admin(request.app.state.settings, request.headers.get("authorization"))
            return await handler(request)

        return checked
