"""The web page at ``/`` and the API docs at ``/docs`` and ``/redoc``, all offline.

Everything a browser loads comes from this package or from ``fastapi-offline`` (which
ships Swagger UI and ReDoc): no CDN, no fonts, nothing from another origin. Pages are
static files whose scripts are files too, so a Content-Security-Policy without
``'unsafe-inline'`` can forbid inline scripts and every other origin; the page builds
its DOM with ``textContent`` only, so a review is always shown as text, never as HTML.

The page is on unless ``SENTIMENT_UI=false``; it adds routes, not middleware, so the
``/predict`` hot path does not change. The docs are always served.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

_PAGES = files("service.http") / "pages"
_NO_SNIFF = {"X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "same-origin"}
# The page: scripts, styles and requests from this origin only; nothing inline.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc set style attributes and <style> elements from their scripts
# (CSS-in-JS), and ReDoc starts a worker from a blob; scripts stay files from here.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class _Static(StaticFiles):
    """Static files with the headers that stop a browser guessing their type."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers.update(_NO_SNIFF)
        return response


def _page(name: str, csp: str) -> HTMLResponse:
    headers = {
        **_NO_SNIFF,
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return HTMLResponse((_PAGES / name).read_text(encoding="utf-8"), headers=headers)


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from the package, for an app created with
    ``docs_url=None, redoc_url=None``."""
    assets = [("service.http", "static/docs"), ("fastapi_offline", "static")]
    app.mount("/static/docs", _Static(packages=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page("docs.html", DOCS_CSP)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page("redoc.html", DOCS_CSP)


def install_page(app: FastAPI) -> None:
    """The page at ``/`` (text box, model picker, label, sentences, word weights)."""
    app.mount("/static/ui", _Static(packages=[("service.http", "static/ui")]), name="ui-static")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return _page("index.html", PAGE_CSP)
