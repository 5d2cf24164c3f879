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
from ..errors import ModscopeError, first_line
from . import blocks, demo, explore, knockout, masks, plot, report, score, sweep, train
from .options import Parser

__all__ = ["build_parser", "main"]


_MAX_MEMORY = (
    "memory budget for what input files declare (sizes, strides, decompressed lengths), e.g. 8G "
    "(default: half of this machine's memory)"
)


_VERBOSE = "show torch's own logs (tracing failures), kept back by default"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="modscope", description="Is this trained network modular, and how much more than chance?"
    )
    parser.add_argument("--version", action="version", version=f"modscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in (score, blocks, knockout, masks, train, plot, report, explore, demo, sweep):
        module.add(sub)  # in this order in --help
    # modscope's own options, taken after the command too (modscope score ... --max-memory 8G): set
    # there only when given, so that they do not undo what came before the command
    for command in [parser, *sub.choices.values()]:
        given_only = {} if command is parser else {"default": argparse.SUPPRESS}
        command.add_argument("--max-memory", metavar="SIZE", help=_MAX_MEMORY, **given_only)
        command.add_argument("--verbose", action="store_true", help=_VERBOSE, **given_only)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        from ..runtime.limits import environment_variable, memory_limit

        verbose = "1" if args.verbose else None  # torch's logs let through
        with memory_limit(args.max_memory), environment_variable("MODSCOPE_VERBOSE", verbose):
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
        print(
            f"modscope: internal error: {type(exc).__name__}: {first_line(exc, 300)} "
            "(set MODSCOPE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
