"""`segmap serve`: run the HTTP service under uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP service (API, tiles, maps)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the data directory")
    p.add_argument("--data-dir", type=Path, help="registry and caches (default: ./var, or SEGMAP_DATA_DIR)")
    p.set_defaults(func=run)


def run(args) -> int:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    print(
        f"segmap: serving {settings.data_dir} on http://{args.host}:{args.port}/ (API docs at /docs, "
        "maps at /maps/berlin-2020 and /maps/series/berlin)",
        flush=True,
    )
    if args.workers == 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5)
        return 0
    # uvicorn's worker processes import the app by name and read SEGMAP_* themselves: the data directory goes
    # in their environment, given to the server program explicitly (this process's own is left as it was).
    env = {**os.environ, "SEGMAP_DATA_DIR": str(settings.data_dir)}
    os.execve(
        sys.executable,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
            "--log-level",
            "info",
            "--timeout-graceful-shutdown",
            "5",
        ],
        env,
    )
