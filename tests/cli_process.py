"""`segmap ARGS…` as a real process without paying the command's imports (~5 s of CPU) on every run.

A helper process imports :mod:`app.cli` once; each run is a fork of it: its own pid, file descriptors 0/1/2 on
/dev/null and two files (so C libraries' output lands on the right stream too), the project root as working
directory, and the exit status of ``main(argv)``, as ``python -m app.cli ARGS…`` would give. The helper is the
child of the test session and is stopped by its pid at the end."""

from __future__ import annotations

import io
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(argv: list[str], out: str, err: str, env: dict) -> None:
    """In the fork: become ``segmap ARGV`` with fresh standard streams, then exit with its status."""
    status = 1
    try:
        os.setsid()
        os.chdir(ROOT)
        os.environ.clear()
        os.environ.update(env)  # the test session's environment now, as a new process would inherit it
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, out, os.O_WRONLY), (2, err, os.O_WRONLY)):
            os.dup2(os.open(path, flags), fd)
        from app.cli import main

        try:
            status = main(argv)
        except SystemExit as stop:  # argparse's usage errors, as the interpreter reports them
            code = stop.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if code is not None and not isinstance(code, int):
                print(code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()  # an uncaught error: the traceback on stderr and status 1, as the interpreter does
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                status = status or 120  # the interpreter's status when flushing stdout fails at exit
        os._exit(status)


def serve() -> None:
    """The helper: one JSON request per line on stdin; answers the child's pid, then its exit status."""
    import importlib

    import app.cli  # noqa: F401  (the imports every run shares)
    from app.cli import RUN_IMPORTS

    for name in ("app.registry", "maps.data", "maps.views", "maps.static", *RUN_IMPORTS):  # what commands import
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # then each run imports it, as a new process would

    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req["argv"], req["out"], req["err"], req["env"])
        print(json.dumps({"pid": pid}), flush=True)
        _, wait_status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(wait_status)}), flush=True)


def _text(data: bytes) -> str:
    """As ``subprocess.run(text=True)`` decodes: the locale's encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data), encoding=locale.getpreferredencoding(False)).read()


class Forks:
    """The helper process, started on first use."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import cli_process; cli_process.serve()"],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        return self.proc

    def _answer(self, proc: subprocess.Popen, timeout: float | None) -> dict:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the segmap fork helper exited with {proc.wait()}")
        return json.loads(line)

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        proc = self._start()
        with tempfile.TemporaryDirectory(prefix="segmap-cli-") as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            out.touch(), err.touch()
            proc.stdin.write(
                json.dumps({"argv": args, "out": str(out), "err": str(err), "env": dict(os.environ)}) + "\n"
            )
            proc.stdin.flush()
            pid = self._answer(proc, 60)["pid"]
            try:
                status = self._answer(proc, timeout)["status"]
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                self._answer(proc, 30)
                raise subprocess.TimeoutExpired(["segmap", *args], timeout) from None
            text = {p: _text(p.read_bytes()) for p in (out, err)}
        return subprocess.CompletedProcess(["segmap", *args], status, text[out], text[err])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()  # the helper's loop ends at end of input
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
