"""Run every benchmark module (or the ones named) and rebuild benchmarks/README.md from the results.

python -m benchmarks [--full] [indices local scale mvt tiles maps informal load calibration]

Quick mode (the default, `make bench`, < 20 minutes on 2 cores) runs fewer sizes and repeats and prints the
calibration without writing it; --full runs every size, the slow anchors and the calibration (hours).
"""

import importlib
import inspect
import os
import sys
from pathlib import Path

full = "--full" in sys.argv
os.environ["SEGMAP_BENCH_QUICK"] = "0" if full else "1"

from benchmarks.common import ORDER, assemble_readme  # noqa: E402 (reads the mode above)

for topic in [a for a in sys.argv[1:] if not a.startswith("--")] or ORDER:
    main = importlib.import_module(f"benchmarks.{topic}").main
    main(quick=not full) if "quick" in inspect.signature(main).parameters else main()
assemble_readme((Path(__file__).parent / "targets.md").read_text())
