"""Run every benchmark module (or the ones named) and rebuild benchmarks/README.md from the results.

python -m benchmarks [indices local mvt tiles maps informal load]
"""

import importlib
import sys
from pathlib import Path

from benchmarks.common import ORDER, assemble_readme

for topic in sys.argv[1:] or ORDER:
    importlib.import_module(f"benchmarks.{topic}").main()
assemble_readme((Path(__file__).parent / "targets.md").read_text())
