"""`segmap --help` and `segmap COMMAND --help` import no heavy library (they took ~3.6 s when app.cli imported
geopandas, scipy, libpysal and numba at the top); the commands import them when they run. The parsers' choices
are plain constants in app/cli/choices.py, checked here against the library they mirror."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

HEAVY = ("geopandas", "pandas", "scipy", "shapely", "pyproj", "libpysal", "numba", "matplotlib", "fastapi", "app.main")

PROBE = """
import contextlib, io, json, sys
from app.cli import COMMANDS, build_parser
parser = build_parser()
for argv in [["--help"]] + [[c.__name__.rsplit(".", 1)[1], "--help"] for c in COMMANDS]:
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    assert "usage: segmap" in out.getvalue(), argv
print(json.dumps(sorted(sys.modules)))
"""


def test_help_of_every_command_imports_no_heavy_library():
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout))
    assert [m for m in HEAVY if m in loaded] == []
    assert not any(m.startswith(("spatial.local", "spatial.indices", "spatial.io", "maps")) for m in loaded)


def test_segmap_help_as_a_process_imports_no_heavy_library():
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "usage: segmap" in r.stdout, r.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert [m for m in HEAVY if m in imported] == []


def test_parser_choices_are_the_librarys():
    from app.cli import choices
    from app.tiles import MAX_ZOOM
    from spatial.change.harmonize import MATCH_TOLERANCE, METHODS
    from spatial.dataset import ID
    from spatial.indices import names
    from spatial.local import ALIASES, GLOBAL_TESTS, MAX_AUTO_PERMUTATIONS, STATISTICS
    from spatial.multiple_testing import CORRECTIONS
    from spatial.weights import KINDS

    assert choices.INDICES == tuple(names())
    assert choices.LOCAL_STATISTICS == STATISTICS and set(choices.LOCAL_ALIASES) == set(ALIASES)
    assert choices.GLOBAL_TESTS == GLOBAL_TESTS and choices.CORRECTIONS == CORRECTIONS and choices.KINDS == KINDS
    assert choices.HARMONIZE_METHODS == METHODS and choices.MATCH_TOLERANCE == MATCH_TOLERANCE
    assert choices.ID == ID and choices.MAX_ZOOM == MAX_ZOOM
    assert choices.MAX_AUTO_PERMUTATIONS == MAX_AUTO_PERMUTATIONS


def test_spatial_package_names_still_resolve():
    import spatial
    from spatial import AreaDataset, LocalResult, ValidationError, load_dataset
    from spatial.dataset import AreaDataset as direct

    assert AreaDataset is direct and callable(load_dataset)
    assert spatial.LocalResult is LocalResult and issubclass(ValidationError, Exception)
    assert set(spatial.__all__) <= set(dir(spatial)) | set(spatial._FROM)
