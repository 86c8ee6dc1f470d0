"""The search preview page at `/` and `/preview`: plain HTML, CSS and JavaScript files of this package (no
build step, no CDN), served under a strict CSP of their own; the page reads GET /v1/schema and calls
GET /v1/search and GET /v1/documents/{id} like any client.

On by default in development, off with APP_ENV=production unless PREVIEW_ENABLED=true (ApiSettings.preview_on).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from src.api.security import PREVIEW_CSP

STATIC = Path(__file__).resolve().parent / "static" / "preview"
PAGE_PATHS = ("/", "/preview")
ASSETS_PATH = "/preview/static"


def install_preview(app: FastAPI) -> None:
    """Serve the page at `PAGE_PATHS` and its files under `ASSETS_PATH`."""

    async def page() -> FileResponse:
        # no-cache: revalidated (ETag) on every visit, so a deployment's new page is seen at once.
        headers = {"content-security-policy": PREVIEW_CSP, "cache-control": "no-cache"}
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)

    for path in PAGE_PATHS:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False, name=f"preview{path}")
    app.mount(ASSETS_PATH, StaticFiles(directory=str(STATIC)), name="preview-static")
