"""The ``cryopick`` command: subcommands grouped by stage, each a thin module in ``commands/``.

Errors meant for the user (``CryopickError``), a system error (``OSError``: disk full,
permission denied) and a bad command line print as one line and exit non-zero;
``--debug`` shows the traceback of anything else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from . import __version__
from .errors import CryopickError, os_error_exit_code, os_error_message

GROUPS = {
    "data": ["simulate", "prepare"],
    "training": ["train", "selftrain"],
    "inference": ["predict", "pick"],
    "evaluation and reports": ["evaluate", "compare", "report", "demo"],
}


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (argparse prints the usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _module(name: str):
    return importlib.import_module(f".commands.{name}", __package__)


def build_parser() -> argparse.ArgumentParser:
    epilog = "\n".join(f"{group}: {', '.join(cmds)}" for group, cmds in GROUPS.items())
    parser = _Parser(
        prog="cryopick",
        description="Cryo-EM particle picking with U-Net / Attention U-Net and self-training.",
        epilog="commands by stage:\n" + epilog + "\n\nrun 'cryopick COMMAND --help' for each command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cryopick {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmds in GROUPS.values():
        for name in cmds:
            mod = _module(name)
            doc = (mod.__doc__ or "").strip()
            p = sub.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            mod.add_args(p)
            p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
            p.set_defaults(_main=mod.main)
    return parser


def _one_line(text: str) -> str:
    """Messages print as one line: a multi-line message (e.g. from a library) is joined."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or bool(os.environ.get("CRYOPICK_DEBUG"))
    try:
        rc = args._main(args)
        return int(rc or 0)
    except CryopickError as e:
        if debug:
            traceback.print_exc()
        print(f"cryopick {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # one no handler named: still one line, with the file and what to change
        if debug:
            traceback.print_exc()
        print(f"cryopick {args.command}: error: {_one_line(os_error_message(e))}", file=sys.stderr)
        return os_error_exit_code(e)
    except KeyboardInterrupt:
        print(f"cryopick {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"cryopick {args.command}: error: out of memory; lower --batch-size, --patch-size or tile size", file=sys.stderr)
        return 4
    except Exception as e:  # a bug or an unforeseen input: one line unless --debug
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"cryopick {args.command}: internal error: {type(e).__name__}: {first} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
