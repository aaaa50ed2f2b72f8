"""The `tinyarms` command: the language server, the ACP agent, config, presets, init/doctor, ask, route, complete,
models, stats.

One module per command group, each with `register(sub)` that adds its subcommands,
each subcommand a `cmd_<name>(args) -> exit code`.

Heavy imports (models, torch) happen inside the commands that need them, so
`tinyarms config ...` stays instant. `common.py` loads the config or exits with the
problems; the groups are listed in `GROUPS`, in the order `--help` shows them.
"""

from __future__ import annotations

import argparse
import sys

from tinyarms import __version__, logs
from tinyarms.cli import acp, ask, complete, config, demo, firstrun, models, presets, router, serve, setup, stats

GROUPS = (serve, acp, config, presets, firstrun, demo, complete, models, setup, ask, stats, router)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyarms", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tinyarms {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug (to stderr)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    # `-v` also after the subcommand (`tinyarms serve -v`), as editors' configs write it.
    for subparser in sub.choices.values():
        subparser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
