"""The `segmap` command. Each sub-command lives in its own module here, listed in :data:`COMMANDS`, and
defines ``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
Results go to stdout; errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys

from spatial.errors import ValidationError

from . import batch, export, harmonize, indices, informal, local, map, series, serve, trend

# in the order `segmap --help` lists them
COMMANDS = (indices, local, informal, map, export, batch, series, trend, harmonize, serve)
EXIT_INPUT = 2
# What the commands import when they run, not before (`segmap --help` stays fast); tests/cli_process.py preloads it.
RUN_IMPORTS = (
    *("spatial.io", "spatial.export", "spatial.local", "spatial.informal", "spatial.change.harmonize"),
    *("spatial.indices.compute", "spatial.indices.aspatial", "spatial.indices.multigroup"),
    *("spatial.indices.spatial_indices", "spatial.batch", "spatial.batch.job", "spatial.batch.table"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segmap", description="Measure and map residential segregation of migrants and informal settlements."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return status
    except BrokenPipeError:
        # `segmap local … | head`: the reader has gone; end quietly, as a process killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ValidationError as err:
        print(f"segmap {args.command}: error:", file=sys.stderr)
        for p in err.problems:
            print(f"  - {p.message}", file=sys.stderr)
        return EXIT_INPUT
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"segmap {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
