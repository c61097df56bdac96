"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

from . import problems
from .cache import DiskCache
from .features import Features
from .http import HeavyWork
from .middleware import BodyLimit, ClientWatch, KeyedCaching, SecurityHeaders
from .registry import Registry, register_bundled
from .settings import Settings
from .tilefast import TileApp
from .tileservice import TileService
from .warmup import warm

log = logging.getLogger("segmap")
SWEEP_EVERY_S = 60  # orphaned temporary files (a crashed writer's) go within a minute, not at the next start


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.registry = Registry(settings.data_dir)
        if settings.register_bundled:
            register_bundled(app.state.registry, settings.bundled_dir)
        app.state.heavy = HeavyWork(settings.max_heavy, settings.compute_timeout_s, settings.heavy_queue)
        app.state.cache = DiskCache(settings.data_dir / "cache.sqlite", settings.cache_entries)
        app.state.tiles = TileService(
            app.state.cache, app.state.heavy, settings.max_permutations, store=settings.data_dir / "tiles"
        )
        app.state.features = Features(app.state.heavy, max_permutations=settings.max_permutations)
        sweeper = asyncio.create_task(_sweep_periodically(app.state.registry))
        await warm(app)  # routes built before the first request, not during it (app/warmup.py)
        yield
        sweeper.cancel()
        app.state.tiles.close()
        app.state.heavy.close()  # running jobs stop at their next checkpoint: shutdown does not wait for them

    app = TileApp(  # FastAPI, with cached tiles answered first (app.tilefast)
        title="segmap",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Segregation indices, local clusters, vector tiles and maps of migrants and informal settlements.",
    )
    app.state.settings = settings

    problems.install(app)
    # Each add wraps the ones before: KeyedCaching is innermost, SecurityHeaders outermost (the 413s of BodyLimit
    # and CORS answers carry them too). Cached tiles are answered before all of them, with their headers (TileApp).
    app.add_middleware(KeyedCaching)
    app.add_middleware(ClientWatch)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        # Never "*" together with credentials: only the configured origins, no cookies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "If-None-Match"],
            expose_headers=["ETag"],
        )
    app.add_middleware(SecurityHeaders)

    for router in routers(settings):
        app.include_router(router)

    _mount_docs(app)
    _document_responses(app)
    return app


def routers(settings: Settings) -> list[APIRouter]:
    """Every router the app serves. The statistics and map routers are switched by settings flags (and imported
    only when on: they load the statistics and map libraries, seconds at start)."""
    from .routers import datasets, downloads, health, informal, ogc, series

    out = [health.router, datasets.router, informal.router, ogc.router, series.router, downloads.router]
    if settings.statistics:
        from .routers import indices, local, local_downloads, series_stats

        out += [indices.router, local.router, series_stats.router, local_downloads.router]
    if settings.maps:
        from .routers import batch, maps, ogc_tiles, series_maps, style, tiles

        out += [tiles.router, ogc_tiles.router, series_maps.router, maps.router, batch.router, style.router]
    return out


# Bodies FastAPI cannot infer because the handler returns a Response: (method, path) -> media types of its 200.
CONTENT_200 = {
    ("get", "/v1/datasets/{dataset_id}/local"): ("application/geo+json", "text/csv"),
    ("get", "/v1/series/{series_id}/indices"): ("application/json", "text/csv"),
    ("get", "/v1/series/{series_id}/change"): ("application/json", "application/geo+json", "text/csv"),
    ("get", "/v1/series/{series_id}/harmonize"): ("application/json", "text/csv"),
    ("get", "/maps/series/{series_id}/areas"): ("application/geo+json",),
    ("get", "/maps/{dataset_id}/data"): ("text/csv", "application/geo+json"),
    ("get", "/ogc/collections/{collection_id}/items"): ("application/geo+json",),
}
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
    "description": "RFC 9457 problem details: what was wrong and how to fix it",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "object"}},
    },
}
ERRORS = {
    "400": "The request body could not be parsed",
    "401": "A write without a valid X-API-Key",
    "404": "Unknown dataset, collection or tile",
    "413": "The request body is over SEGMAP_MAX_UPLOAD_MB",
    "422": "Invalid parameters or data, with a hint",
    "503": "Busy (too many computations queued) or the computation timed out; retry after Retry-After",
}


def _document_responses(app: FastAPI) -> None:
    """The OpenAPI document names every status and media type the service really answers with."""

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                responses = op.setdefault("responses", {})
                if (method, path) in CONTENT_200:
                    ok = responses.setdefault("200", {"description": "Successful Response"})
                    ok["content"] = {media: {} for media in CONTENT_200[(method, path)]}
                has_path = "{" in path
                codes = {"422"} if op.get("parameters") or op.get("requestBody") else set()
                if has_path:
                    codes |= {"404", "503"}
                if method == "post":
                    codes |= {"400", "401", "413", "503"}
                if method == "delete":
                    codes |= {"401"}
                for code in sorted(codes):
                    responses[code] = {"description": ERRORS[code], "content": problem}
                if "503" in codes:
                    responses["503"]["headers"] = {
                        "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}
                    }
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, replaced by Problem above
            if f'"#/components/schemas/{name}"' not in json.dumps(schema["paths"]):
                schema["components"]["schemas"].pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


async def _sweep_periodically(registry: Registry) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        try:
            removed = await asyncio.to_thread(registry.sweep)
        except Exception:  # a locked or busy catalogue: try again next time
            log.exception("sweep of the data directory failed")
            continue
        if removed:
            log.warning("removed %d orphaned file(s) from the data directory: %s", len(removed), removed[:5])


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI from the pip-installed bundle: /docs works with no internet."""
    import swagger_ui_bundle

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="segmap API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )
