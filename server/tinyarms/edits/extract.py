"""A model's answer -> the code that replaces a range, or a refusal saying why there is none.

Models asked for "the changed code" answer in many shapes: a fenced block between a
sentence of chatter and a paragraph of explanation, a bare block of code, code followed by
"This version ...", two blocks (before and after), or a block cut off by the token limit.
`replacement(answer, original)`:

1. takes the code out: the largest fenced block (``` or ~~~, any info string; the later one
   on a tie, as "after" follows "before"; a fence that never closes means the answer was cut
   off, by the token limit most often, and is refused: applying it would delete the rest); without
   fences, the answer less its leading chatter lines ("Here is the refactored code:") and
   trailing prose paragraphs ("This version avoids ...");
2. keeps the range's indentation: the code is dedented and re-indented to the original's
   base indentation (a method body stays inside its class), with the original's line ending
   and trailing newline;
3. refuses (raises `Refused` with one sentence) an answer with no code in it or code that
   is the same as the original.

Whether the result parses in its file is `check.refusal`'s job, on the whole new file.
"""

from __future__ import annotations

import re
import textwrap

from tinyarms.edits import languages
from tinyarms.edits.check import unchanged


class Refused(Exception):
    """The answer cannot be applied; `reason` is one sentence for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n`]*$")

# Leading lines that introduce the code rather than belong to it.
_CHATTER_START = re.compile(
    r"^\s*(here\b|sure|certainly|of course|okay|ok\b|alright|below|the following|"
    r"this is|i('ve| have| will|'ll| made| changed| updated| rewrote)|let me|updated|refactored|fixed|"
    r"answer|output|result|solution)\b",
    re.IGNORECASE,
)
# Trailing paragraphs that explain the code.
_EXPLANATION_START = re.compile(
    r"^\s*(\*\*)?(explanation|note|notes|changes|what changed|summary|this (version|code|change|function)|"
    r"the (code|change|function|above|new)|i (changed|added|removed|renamed|replaced|made)|in this|these changes|"
    r"key (changes|improvements))\b",
    re.IGNORECASE,
)
_CODE_START = re.compile(
    r"^\s*(def|class|return|import|from|async|await|fn|pub|let|const|var|func|package|type|interface|"
    r"export|function|if|else|elif|for|while|match|switch|case|try|catch|except|finally|with|raise|throw|"
    r"yield|use|mod|impl|struct|enum|#|//|/\*|\*|@|<|\"\"\"|''')"
)
_CODE_END = re.compile(r"[{}\[\](;,:=\\]\s*$")


def _prose(line: str) -> bool:
    """A line of English sentence rather than code (used only at the answer's edges)."""
    stripped = line.strip()
    if not stripped or _CODE_START.match(stripped) or _CODE_END.search(stripped):
        return False
    if re.search(r"\s=\s|==|=>|->|::|\w\(|\)\s*\{|;\s*$", stripped):
        return False
    return bool(re.match(r"^[-*]?\s*[A-Za-z][\w'’,.]*(\s+\S+){3,}", stripped))


def _fenced_blocks(answer: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] | None = None
    marker = ""
    for line in answer.splitlines():
        match = _FENCE.match(line)
        if current is None:
            if match:
                current, marker = [], match.group(1)
        elif match and line.strip().startswith(marker[0] * len(marker)) and line.strip().strip(marker[0]) == "":
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    if current is not None:  # cut off (the token limit): the code it holds is not the whole answer
        raise Refused("The model's answer stops inside its code block (cut off), so nothing was changed.")
    return blocks


def _without_chatter(answer: str) -> str:
    lines = answer.splitlines()
    # Leading: chatter lines ("Here is the refactored code:") and the blank lines around them.
    while lines:
        first = lines[0].rstrip()
        if first and (_CODE_START.match(first) or not _CHATTER_START.match(first)):
            break
        if first and not (first.endswith((":", ".", "!")) or _prose(first)):
            break  # "result = compute()" starts like chatter but is code
        lines.pop(0)
    # Trailing: paragraphs (after a blank line) made only of prose, or that start like an explanation.
    while True:
        while lines and not lines[-1].strip():
            lines.pop()
        blank = max((i for i, line in enumerate(lines) if not line.strip()), default=-1)
        tail = lines[blank + 1 :]
        if blank < 0 or not tail:
            break
        explains = _EXPLANATION_START.match(tail[0]) and not _CODE_START.match(tail[0])
        if not (explains or all(_prose(line) for line in tail)):
            break
        lines = lines[:blank]
    # A last line of explanation glued to the code ("This version uses a set.").
    while len(lines) > 1 and _EXPLANATION_START.match(lines[-1]) and _prose(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def code_in(answer: str) -> str:
    """The code in a model's answer (fences, chatter and explanations removed), not yet re-indented.

    Raises `Refused` for an answer whose code block never closes."""
    blocks = _fenced_blocks(answer)
    if blocks:
        best = max(range(len(blocks)), key=lambda i: (len(blocks[i].strip().splitlines()), i))
        return blocks[best]
    return _without_chatter(answer)


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def base_indent(text: str) -> str:
    """The indentation the text's lines share (of its least-indented non-blank line)."""
    indents = [_indent_of(line) for line in text.splitlines() if line.strip()]
    return min(indents, key=len) if indents else ""


def _line_ending(text: str) -> str:
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


def replacement(answer: str, original: str, *, path: str = "", indent: str = "") -> str:
    """The text that replaces `original` (whole lines of a file), taken from the model's `answer`.

    `indent` is the indentation to keep when the original is blank (an insertion point);
    otherwise the original's own base indentation is kept. An answer in words only is refused
    where code is expected: the original has code, or it is blank in a file of a known
    language (`path`). Raises `Refused`.
    """
    code = code_in(answer)
    lines = [line.rstrip() for line in textwrap.dedent(code).splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise Refused("The model's answer had no code in it, so nothing was changed.")
    original_lines = [line for line in original.splitlines() if line.strip()]
    code_expected = not all(map(_prose, original_lines)) if original_lines else languages.for_path(path) is not None
    if code_expected and all(_prose(line) for line in lines if line.strip()):
        raise Refused("The model answered in words instead of code, so nothing was changed.")
    base = base_indent(original) if original.strip() else indent
    eol = _line_ending(original)
    text = eol.join(base + line if line else "" for line in lines)
    if original.endswith(("\n", "\r")) or not original:
        text += eol
    if original.strip() and unchanged(original, text):
        raise Refused("The model's answer is the same as the selected code, so nothing was changed.")
    return text
