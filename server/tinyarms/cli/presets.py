"""`tinyarms presets list | show | install | update | remove | diff`: shipped and installed presets."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from tinyarms.cli.common import Subparsers, arg, command, flag, group


def register(sub: Subparsers) -> None:
    presets = group(sub, "presets", "shipped and installed presets: list, show, install, update, remove, diff")
    name = arg("name")
    command(presets, "list", "every preset, with its origin and version", _guarded(cmd_list), flag("--json", "JSON"))
    command(presets, "show", "a preset's TOML, with where it came from", _guarded(cmd_show), name)
    command(
        presets, "install", "install a preset from a file or an http(s) URL", _guarded(cmd_install),
        arg("source", metavar="FILE|URL"), arg("--name", help="install under this name (default: the file name)"),
        arg("--sha256", metavar="HASH", help="refuse unless the content has this sha256"),
    )  # fmt: skip
    command(
        presets, "update", "fetch an installed preset again from where it came from", _guarded(cmd_update), name,
        arg("--sha256", metavar="HASH", help="accept new content only with this sha256"),
        flag("--yes", "accept new content whatever its hash"),
    )  # fmt: skip
    command(presets, "remove", "remove an installed preset", _guarded(cmd_remove), name)
    command(
        presets, "diff", "what a preset changes against the default", _guarded(cmd_diff), name,
        arg("--against", default="default", metavar="PRESET", help="compare with this preset"),
    )  # fmt: skip


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A preset that cannot be found, fetched or installed: one line on stderr, exit 1."""

    def run(args: argparse.Namespace) -> int:
        from tinyarms.presets import PresetError

        try:
            return command(args)
        except PresetError as exc:
            print(f"tinyarms: {exc}", file=sys.stderr)
            return 1

    return run


def cmd_list(args: argparse.Namespace) -> int:
    from tinyarms import presets

    rows = presets.entries()
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    table = [("name", "origin", "version", "description")]
    for row in rows:
        origin = row.origin if not row.installed else f"installed from {row.origin}"
        if row.shadows_shipped:
            origin += " (shadows the shipped one)"
        table.append((row.name, origin, row.version, row.description))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:3])) + "  " + r[3])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tinyarms import presets

    entry = presets.get(args.name)
    origin = f"installed from {entry.origin}, sha256 {entry.sha256}" if entry.installed else "shipped"
    print(f"# preset {entry.name}: {origin}\n# {entry.path}", file=sys.stderr)
    sys.stdout.write(entry.path.read_text(encoding="utf-8"))
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from tinyarms import presets

    done = presets.install(args.source, name=args.name, expect_sha256=args.sha256)
    print(f"installed preset '{done.name}' from {done.origin}")
    print(f"  sha256 {done.sha256}")
    print(f"  {done.path}")
    if done.shadows_shipped:
        print(f"  note: it shadows the shipped preset '{done.name}' (an installed preset is found first)")
    print(f'use it with extends = "{done.name}" in your user file; pin it with --sha256 {done.sha256}')
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from tinyarms import presets

    done = presets.update(args.name, confirm=args.yes, expect_sha256=args.sha256)
    if not done.changed:
        print(f"preset '{done.name}' is up to date (sha256 {done.sha256})")
    else:
        print(f"updated preset '{done.name}' from {done.origin}\n  sha256 {done.sha256}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from tinyarms import presets

    path = presets.remove(args.name)
    print(f"removed preset '{args.name}' ({path})")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from tinyarms import presets

    lines = presets.diff(args.name, args.against)
    print(f"preset '{args.name}' against '{args.against}': {len(lines)} key{'s' if len(lines) != 1 else ''} differ")
    for line in lines:
        print(f"  {line}")
    return 0
