"""Schemathesis against the app's own OpenAPI schema on a live server, with every check: no 5xx, and every
status, media type, header and Allow list the service answers with is the one its schema documents.

Bounded: a fixed number of examples per operation and a fixed seed, so CI time stays flat (~40 s on
an idle 2-core machine).
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
# A schema-valid request may still be refused with 422 for what a schema cannot express: an unknown group of
# this dataset, a bbox out of order, permutations over this server's SEGMAP_MAX_PERMUTATIONS; or with 400 for an OGC
# filter, sortby or properties that CQL2's grammar or the collection's queryables refuse (a string in the schema).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429"]
"""


@pytest.fixture(scope="module")
def url():
    with LiveServer(env={"SEGMAP_API_KEY": "fuzz-key", "SEGMAP_MAX_PERMUTATIONS": "99"}) as url:
        yield url


@pytest.mark.skipif(
    not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None, reason="schemathesis not installed"
)
@pytest.mark.parametrize("caller, examples", [("owner", 8), ("public", 4)])
def test_every_answer_is_documented_and_none_is_a_server_error(url, tmp_path, caller, examples):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    # The owner also uploads (POST); the public reads what protection leaves of the data.
    args = ["--header", "X-API-Key: fuzz-key"] if caller == "owner" else ["--include-method", "GET"]
    out = subprocess.run(
        [
            str(SCHEMATHESIS if SCHEMATHESIS.exists() else "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            "--seed",
            "7",
            "--exclude-method",
            "DELETE",
            "--request-timeout",
            "60",
            "--no-shrink",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    summary = out.stdout.split("Test cases:")[-1]
    assert "generated" in summary and "failed" not in summary.split("\n")[1], summary
