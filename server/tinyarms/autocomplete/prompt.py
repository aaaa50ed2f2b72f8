"""The bounded prompt around the cursor.

The start of the prompt is a line boundary chosen stably: the first line whose number
is a multiple of `STEP` and that keeps the text before the cursor's line within the
character budget. While the user types on one line (or moves down a few lines), that
start does not move, so the new prompt extends the previous one token for token and the
model evaluates only the new tokens (a cold 500-token prompt costs seconds on 2 cores; a
warm keystroke tens of milliseconds).
"""

from __future__ import annotations

import attrs

STEP = 16  # lines; the prompt start snaps to a multiple of this
PREFIX_CHARS = 2000  # at most, about 550 tokens of code, once the KV cache holds it
COLD_PREFIX_CHARS = 600  # a prompt that starts afresh: about 170 tokens, 1-2 s to evaluate
SUFFIX_CHARS = 600
LINE_CHARS = 1000  # a longer current line keeps only its last part


@attrs.frozen
class Prompt:
    before: str  # whole lines before the cursor's line, from the stable start
    line_prefix: str  # the cursor's line, before the cursor
    line_suffix: str  # the cursor's line, after the cursor (no newline)
    below: str  # the lines below the cursor's line, clipped
    first_line: int  # the line number `before` starts at

    @property
    def after(self) -> str:
        """Everything after the cursor, as a FIM suffix."""
        return self.line_suffix + ("\n" + self.below if self.below else "")

    @property
    def indent(self) -> str:
        """Indentation of the cursor's line."""
        return self.line_prefix[: len(self.line_prefix) - len(self.line_prefix.lstrip())]

    def previous_line(self) -> str:
        lines = self.before.rstrip("\n").rsplit("\n", 1)
        return lines[-1] if self.before else ""


def build(
    lines: list[str],
    line: int,
    column: int,
    *,
    prefix_chars: int = PREFIX_CHARS,
    suffix_chars: int = SUFFIX_CHARS,
    step: int = STEP,
    cold_chars: int | None = None,
    sticky_start: int | None = None,
    sticky_line: int | None = None,
) -> Prompt:
    """`lines` without line ends; `line`/`column` in code points, already clamped.

    `sticky_start` is where the previous prompt started and `sticky_line` its cursor's
    line: the KV cache holds the lines between them. The start is kept while the text from
    there to the cursor fits `prefix_chars`, and the lines new since `sticky_line` fit
    `cold_chars`. Otherwise the prompt starts afresh within `cold_chars` (default
    `prefix_chars`), so a cold start is cheap and the window then grows as the user types
    on. (Without the second rule, a jump 50 lines down from the top of a file kept start 0
    and evaluated ~1900 characters, 424 tokens, 2 s, instead of 600.)"""
    current = lines[line]
    line_prefix, line_suffix = current[:column][-LINE_CHARS:], current[column:]
    start: int | None = None
    if sticky_start is not None and sticky_start <= line:
        size = new = 0
        for index in range(sticky_start, line):
            size += len(lines[index]) + 1
            if sticky_line is not None and index >= sticky_line:
                new += len(lines[index]) + 1
            if size > prefix_chars or (cold_chars is not None and new > cold_chars):
                break
        else:
            start = sticky_start
    if start is None:
        budget = prefix_chars if cold_chars is None else cold_chars
        # Earliest line the budget allows, walking up from the cursor's line.
        earliest, used = line, 0
        while earliest > 0 and used + len(lines[earliest - 1]) + 1 <= budget:
            earliest -= 1
            used += len(lines[earliest]) + 1
        start = -(-earliest // step) * step  # snap up to a multiple of `step`
        if start >= line:
            start = earliest  # long lines: no multiple of `step` fits, keep what does
    before = "".join(text + "\n" for text in lines[start:line])
    below_lines: list[str] = []
    size = 0
    for index in range(line + 1, len(lines)):
        text = lines[index]
        if size + len(text) + 1 > suffix_chars:
            break
        below_lines.append(text)
        size += len(text) + 1
    return Prompt(before, line_prefix, line_suffix, "\n".join(below_lines), start)


def from_text(prefix: str, suffix: str, **kwargs: int) -> Prompt:
    """A prompt from raw text before and after the cursor (the CLI's `--jsonl`)."""
    head = prefix.split("\n")
    tail = suffix.split("\n")
    lines = head[:-1] + [head[-1] + tail[0]] + tail[1:]
    return build(lines, len(head) - 1, len(head[-1]), **kwargs)
