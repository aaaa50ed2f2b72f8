"""Map TOML key paths to the line that sets them.

tomllib gives values but no positions; diagnostics and `config show --explain`
need "file:line". A config file is simple enough (tables, key = value, dotted
keys, inline tables) that a line scanner finds every key's line without a
second TOML parser.
"""

from __future__ import annotations

import re

KeyPath = tuple[str, ...]

_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_INLINE_KEY = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")


def split_dotted(key: str) -> KeyPath:
    """Split `a."b.c".d` into ('a', 'b.c', 'd')."""
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Return {key path: 1-based line} for every table header and key in `text`."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    in_multiline_string = False
    for number, raw in enumerate(text.splitlines(), start=1):
        # Skip the body of multi-line strings; a ''' or """ toggles.
        quotes = raw.count('"""') + raw.count("'''")
        if in_multiline_string:
            if quotes % 2 == 1:
                in_multiline_string = False
            continue
        if match := _TABLE.match(raw):
            table = split_dotted(match.group(1))
            for i in range(1, len(table) + 1):
                lines.setdefault(table[:i], number)
            continue
        if match := _KEY.match(raw):
            path = table + split_dotted(match.group(1))
            for i in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:i], number)
            rest = raw[match.end() :]
            # Keys inside an inline table on the same line: {tier = "x", ...}
            for inner in _INLINE_KEY.finditer(rest):
                lines.setdefault(path + split_dotted(inner.group(1)), number)
        if quotes % 2 == 1:
            in_multiline_string = True
    return lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, or of its nearest enclosing table that has one."""
    for i in range(len(path), 0, -1):
        if path[:i] in lines:
            return lines[path[:i]]
    return None
