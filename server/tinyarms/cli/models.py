"""`tinyarms models pull | list`: hf: models into the cache, and what the cache holds."""

from __future__ import annotations

import argparse
import json
import sys

from tinyarms.cli.common import WORKSPACE, Subparsers, arg, command, flag, group, load


def register(sub: Subparsers) -> None:
    models = group(sub, "models", "model files: pull hf: models, list the cache")
    command(
        models, "pull", "download hf:owner/repo/file.gguf into the cache (resumes, checks)", cmd_pull,
        arg("specs", nargs="+", metavar="hf:owner/repo/file.gguf"),
        arg("--revision", default="main", help="branch, tag or commit (default: main)"),
        flag("--force", "download again even if the cached file checks out"),
    )  # fmt: skip
    command(
        models, "list", "cached models, sizes, and which tier uses which", cmd_list, flag("--json", "JSON"), WORKSPACE
    )


def cmd_pull(args: argparse.Namespace) -> int:
    from tinyarms.models.listing import human_size
    from tinyarms.models.pull import PullError, pull
    from tinyarms.models.sources import ModelNotAvailable

    code = 0
    for spec in args.specs:
        if not spec.startswith("hf:"):
            print(f"tinyarms: {spec}: only hf:owner/repo/file.gguf models are pulled", file=sys.stderr)
            code = 2
            continue
        try:
            pulled = pull(spec, revision=args.revision, force=args.force)
        except (PullError, ModelNotAvailable) as exc:
            print(f"tinyarms: {exc}", file=sys.stderr)
            code = 1
            continue
        how = "already cached" if not pulled.downloaded else "downloaded"
        if pulled.resumed_from:
            how += f", resumed at {human_size(pulled.resumed_from)}"
        print(f"{spec}: {how}, {human_size(pulled.size)}, {pulled.checksum} ok")
        print(f"  {pulled.path}")
    return code


def cmd_list(args: argparse.Namespace) -> int:
    from tinyarms.models.listing import human_size, list_models
    from tinyarms.models.sources import cache_dir

    entries = list_models(load(args).config)  # a broken config still lists the cache
    if args.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        return 0
    rows = [("model", "size", "state", "used by (tier: roles)")]
    for entry in entries:
        used = f"{', '.join(entry.tiers)}: {', '.join(entry.roles) or '-'}" if entry.tiers else "-"
        rows.append((entry.spec, human_size(entry.size), entry.state, used))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for entry in entries:
        if entry.note and entry.state != "cached":
            print(f"  {entry.spec}: {entry.note}", file=sys.stderr)
    print(f"cache: {cache_dir()}")
    return 0
