"""``modscope`` command line: a thin layer over the Python API.

Every subcommand (one module each) parses its options, calls one API function and prints /
writes its result. Bad input raises `ModscopeError`, printed as one line on stderr with exit
code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import ModscopeError
from . import blocks, demo, explore, knockout, masks, plot, report, score, sweep, train
from .options import Parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="modscope", description="Is this trained network modular, and how much more than chance?"
    )
    parser.add_argument("--version", action="version", version=f"modscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    score.add(sub)
    blocks.add(sub)
    knockout.add(sub)
    masks.add(sub)
    train.add(sub)
    plot.add(sub)
    report.add(sub)
    explore.add(sub)
    demo.add(sub)
    sweep.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except ModscopeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "invalid input"
        print(f"modscope: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("modscope: error: out of memory (try a smaller network or fewer --jobs)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("MODSCOPE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(
            f"modscope: internal error: {type(exc).__name__}: {first} "
            "(set MODSCOPE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
