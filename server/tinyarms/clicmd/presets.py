"""`tinyarms presets list | show | install | update | remove | diff`: shipped and installed presets."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def register(sub: Any) -> None:
    presets = sub.add_parser("presets", help="shipped and installed presets: list, show, install, update, remove, diff")
    presets_sub = presets.add_subparsers(dest="presets_command", required=True)
    listing = presets_sub.add_parser("list", help="every preset, with its origin and version")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_guarded(cmd_list))
    show = presets_sub.add_parser("show", help="a preset's TOML, with where it came from")
    show.add_argument("name")
    show.set_defaults(func=_guarded(cmd_show))
    install = presets_sub.add_parser("install", help="install a preset from a file or an http(s) URL")
    install.add_argument("source", metavar="FILE|URL")
    install.add_argument("--name", help="install under this name (default: the file name)")
    install.add_argument("--sha256", metavar="HASH", help="refuse unless the content has this sha256")
    install.set_defaults(func=_guarded(cmd_install))
    update = presets_sub.add_parser("update", help="fetch an installed preset again from where it came from")
    update.add_argument("name")
    update.add_argument("--sha256", metavar="HASH", help="accept new content only with this sha256")
    update.add_argument("--yes", action="store_true", help="accept new content whatever its hash")
    update.set_defaults(func=_guarded(cmd_update))
    remove = presets_sub.add_parser("remove", help="remove an installed preset")
    remove.add_argument("name")
    remove.set_defaults(func=_guarded(cmd_remove))
    diff = presets_sub.add_parser("diff", help="what a preset changes against the default")
    diff.add_argument("name")
    diff.add_argument("--against", default="default", metavar="PRESET", help="compare with this preset")
    diff.set_defaults(func=_guarded(cmd_diff))


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
