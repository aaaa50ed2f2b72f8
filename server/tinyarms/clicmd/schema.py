"""`tinyarms config schema [--path]`: the JSON Schema of a tinyarms TOML file, for editors."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(config_sub: Any) -> None:
    schema = config_sub.add_parser("schema", help="the JSON Schema of tinyarms TOML files (for Taplo-based editors)")
    schema.add_argument("--path", action="store_true", help="print where the shipped schema file is instead")
    schema.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from tinyarms.config.jsonschema import SCHEMA_FILE, shipped_schema_text

    if args.path:
        print(SCHEMA_FILE)
        return 0
    sys.stdout.write(shipped_schema_text())
    return 0
