"""Write a few keys into a user's TOML file and keep everything else: comments, order, other keys.

`tinyarms router calibrate` and `tinyarms router fit --from-log` write what they computed into
the user file, where `tinyarms config show --explain` finds it like any other setting. tomlkit
edits the document in place; the new text is written to a temporary file beside it and renamed
over it, so a crash leaves the old file or the new one, never half of one. A file that does not
parse is left alone and the error says where.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError


class ConfigEditError(ValueError):
    """The file cannot be edited; nothing was written."""


def set_keys(path: Path, updates: Mapping[tuple[str, ...], Any]) -> None:
    """Set each dotted key (("roles", "chat", "strong_threshold") -> value), creating tables as needed."""
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigEditError(f"{path}: cannot read: {exc}") from exc
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigEditError(f"{path}: not valid TOML, left unchanged: {exc}") from exc
    for keys, value in updates.items():
        table: Any = document
        for key in keys[:-1]:
            if key not in table:
                table[key] = tomlkit.table()
            table = table[key]
            if not isinstance(table, dict):
                raise ConfigEditError(f"{path}: {'.'.join(keys[:-1])} is not a table, left unchanged")
        table[keys[-1]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(tomlkit.dumps(document))
        if path.exists():
            os.chmod(partial, path.stat().st_mode & 0o777)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
