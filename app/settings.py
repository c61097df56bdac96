"""Service configuration, read from ``SEGMAP_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def _default_bundled_dir() -> Path:
    # An editable install runs from the repository; a container copies data/ to its working directory.
    return REPO_DATA if (REPO_DATA / "boundaries").is_dir() else Path("data").resolve()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMAP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="registry, datasets and caches live here")
    bundled_dir: Path = Field(default_factory=_default_bundled_dir, description="sample data registered at first start")
    register_bundled: bool = True
    statistics: bool = Field(True, description="serve indices and local statistics (/v1/datasets/{id}/indices, /local)")
    maps: bool = Field(True, description="serve vector tiles and maps (/v1/datasets/{id}/tiles, /maps)")
    api_key: str | None = Field(None, description="when set, writes need the X-API-Key header")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a browser")
    max_upload_mb: float = 50.0
    max_uncompressed_mb: float = 500.0  # cap on what a zip may expand to
    max_vertices: int = 5_000_000
    max_permutations: int = 9999
    max_heavy: int = 2  # concurrent CPU-heavy computations per worker
    heavy_queue: int = 4  # computations waiting per running one; beyond, 503 busy
    compute_timeout_s: float = 60.0
    max_download_areas: int = 20_000  # one offline HTML file embeds every area's geometry (~8 MB at 20,000)
    max_offline_areas: int = 200_000  # above it no offline HTML file at all: 422 naming PMTiles, PNG, GeoParquet
    canvas_areas: int = 100_000  # above it map pages draw their tiles on canvas, not one SVG element per shape
    cache_entries: int = 20_000  # results and tiles kept in the shared disk cache
    disclosure_threshold: int = 10  # counts below it are hidden in public outputs (0 disables)
    disclosure_method: Literal["suppress", "cell_key"] = "suppress"  # see spatial/disclosure.py
    basemap_url: str | None = None  # e.g. an intranet tile server; no base map by default
    basemap_attribution: str = ""

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)
