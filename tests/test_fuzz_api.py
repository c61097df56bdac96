"""Schemathesis against the app's own OpenAPI schema on a live server: no input may cause a 5xx.

Bounded: a fixed number of examples per operation and a fixed seed, so CI time stays flat.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server import LiveServer

pytestmark = pytest.mark.server
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.skipif(not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None, reason="schemathesis not installed")
def test_no_server_errors_for_any_schema_valid_or_invalid_request():
    with LiveServer(env={"SEGMAP_API_KEY": "fuzz-key", "SEGMAP_MAX_PERMUTATIONS": "99"}) as url:
        out = subprocess.run([str(SCHEMATHESIS if SCHEMATHESIS.exists() else "schemathesis"), "run", f"{url}/openapi.json",
                              "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "7",
                              "--header", "X-API-Key: fuzz-key", "--exclude-method", "DELETE", "--request-timeout", "60"],
                             capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "generated" in out.stdout and "failed" not in out.stdout.split("Test cases:")[-1].split("\n")[1]
