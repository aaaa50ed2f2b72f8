"""From raw model text to what the editor inserts at the cursor.

- one line, or a block where `roles.autocomplete.multiline` allows one ("auto": an empty
  line right below a block opener such as `def ...:`, `if ...:` or `{`; "always": any
  empty line; "never": none), ending at an empty line, a dedent, or a line the file
  already has below;
- nothing the rest of the line already has (e.g. the closing brackets after the cursor);
- the document's indentation style; no trailing whitespace or template markers.
"""

from __future__ import annotations

import re

from tinyarms.autocomplete.prompt import Prompt

MAX_LINES = 8
BLOCK_OPENER = re.compile(r"([:{(\[]|=>|->|\bdo|\bthen|\bbegin)\s*(#.*|//.*)?$")
MARKERS = re.compile(r"<\|?(endoftext|file_sep|fim_[a-z]+|file_separator|EOT)\|?>|<fim[-_][a-z]+>|</s>")


MULTILINE_MODES = ("auto", "always", "never")


def allows_multiline(prompt: Prompt, mode: str = "auto") -> bool:
    """Whether a block may be offered here: never mid-line; "auto" only on an empty (or
    indentation-only) line right below a block opener."""
    if mode == "never" or prompt.line_prefix.strip() or prompt.line_suffix.strip():
        return False
    if mode == "always":
        return True
    return bool(BLOCK_OPENER.search(prompt.previous_line().rstrip()))


def _indent_width(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _restyle_indent(line: str, use_tabs: bool) -> str:
    body = line.lstrip(" \t")
    width = _indent_width(line)
    return ("\t" * (width // 4) + " " * (width % 4) if use_tabs else " " * width) + body


def clean(raw: str, prompt: Prompt, *, multiline: bool) -> str:
    """`multiline`: the engine allows a block here (see `allows_multiline`); mid-line
    never gets more than the rest of the line."""
    text = MARKERS.split(raw.replace("\r", ""), maxsplit=1)[0]
    lines = text.split("\n")
    if not (multiline and allows_multiline(prompt, "always")):
        return _trim_line_suffix(lines[0].rstrip(), prompt.line_suffix)
    use_tabs = "\n\t" in "\n" + prompt.before and "\n    " not in "\n" + prompt.before
    first = lines[0].rstrip()
    base = _indent_width(prompt.line_prefix + first)
    kept = [first]
    below = [line.strip() for line in prompt.below.split("\n") if line.strip()]
    next_below = below[0] if below else None
    for line in lines[1:MAX_LINES]:
        stripped = line.strip()
        if not stripped or _indent_width(line) < base or stripped == next_below:
            break
        kept.append(_restyle_indent(line.rstrip(), use_tabs))
    if kept and kept[0].strip() == next_below:
        return ""
    return "\n".join(kept).rstrip()


def _trim_line_suffix(text: str, line_suffix: str) -> str:
    """Drop the end of `text` that the rest of the line already has (closing brackets...)."""
    rest = line_suffix.strip()
    if not rest:
        return text
    for size in range(min(len(rest), len(text)), 0, -1):
        if text.endswith(rest[:size]):
            return text[:-size].rstrip()
    return text
