"""A real uvicorn process on 127.0.0.1 for tests and benchmarks, stopped by its process id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GEORGIA = ("boundaries/georgia_counties.gpkg", "census/georgia_counties_1990.csv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``with LiveServer(env={...}) as base_url:`` — start, wait for /health, stop by pid."""

    def __init__(
        self,
        env: dict | None = None,
        data_dir: Path | None = None,
        workers: int = 1,
        port: int | None = None,
        georgia_only: bool = False,
    ):
        """``georgia_only``: the bundled samples are Georgia alone (registering all of them costs ~12 s of CPU)."""
        self.env, self.workers = env or {}, workers
        self._bundle = tempfile.TemporaryDirectory(prefix="segmap-bundle-") if georgia_only else None
        if self._bundle:
            for part in GEORGIA:
                (Path(self._bundle.name) / part).parent.mkdir(parents=True, exist_ok=True)
                (Path(self._bundle.name) / part).symlink_to(ROOT / "data" / part)
            self.env = {"SEGMAP_BUNDLED_DIR": self._bundle.name, **self.env}
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="segmap-test-")
        self.data_dir = Path(data_dir or self._tmp.name)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> str:
        env = {**os.environ, "SEGMAP_DATA_DIR": str(self.data_dir), **{k: str(v) for k, v in self.env.items()}}
        self.log = open(self.data_dir / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become healthy: " + self.read_log()[-2000:])

    def read_log(self) -> str:
        return (self.data_dir / f"server-{self.port}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        for tmp in (self._tmp, self._bundle):
            if tmp:
                tmp.cleanup()
