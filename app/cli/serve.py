"""`segmap serve`: run the HTTP service under uvicorn."""
from __future__ import annotations

import os


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP service (API, tiles, maps)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the data directory")
    p.add_argument("--data-dir", help="registry and caches (default: ./var, or SEGMAP_DATA_DIR)")
    p.set_defaults(func=run)


def run(args) -> int:
    import uvicorn
    if args.data_dir:
        os.environ["SEGMAP_DATA_DIR"] = args.data_dir
    print(f"segmap: serving on http://{args.host}:{args.port}/ (API docs at /docs, maps at /maps/georgia-1990)")
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="info", timeout_graceful_shutdown=5)
    return 0
