"""Run every benchmark module (or the ones named): python -m benchmarks [indices local tiles load]."""
import importlib
import sys

TOPICS = ["indices", "local", "mvt", "tiles", "maps", "informal", "load"]

for topic in sys.argv[1:] or TOPICS:
    importlib.import_module(f"benchmarks.{topic}").main()
