"""More training rows, written the way people really type to an editor: derived from each row by a seeded rule.

The shipped examples are clean sentences. Requests are not: lower case without the final
"?", a typo or two ("refactr", "teh"), an `@file` mention, a line of pasted code or an error
message in front of or after the words. Each training row gets `copies` variants; each variant
applies one to three of these changes, chosen by a random generator seeded from the row's text
(so the same rows always give the same variants, on every machine and every start):

- case: all lower case, final punctuation dropped;
- typos: one or two words of 4+ letters get a swapped, dropped, doubled or neighbouring-key letter
  (Latin and Cyrillic words; CJK text has none);
- mention: an `@path` or `@symbol` put before or after the request;
- code: a line of code (Python, TypeScript, Rust, Go, Java, SQL, shell) after a colon or a newline;
- error: a pasted error line, for the routes where people paste one (fix, explain, test).

The label stays the row's own: none of these changes what is being asked. The variants teach the
classifier that code, paths and typos are not the request, and the n-gram view gets the
misspelt forms. Nothing here looks at any evaluation set; the pools below are generic.
"""

from __future__ import annotations

import hashlib
import random
import re

ERROR_LABELS = frozenset({"fix", "explain", "test"})

MENTIONS = (
    "@src/main.py", "@utils.ts", "@lib/parser.rs", "@api/handlers.go", "@app/models/user.rb",
    "@components/Button.tsx", "@tests/test_api.py", "@Makefile", "@config.yaml", "@README.md",
    "@workspace", "@file", "@selection", "@UserService", "@parse_args", "@index.js",
)  # fmt: skip
CODE = (
    "def load(path): return json.load(open(path))",
    "for i in range(len(items)): total += items[i]",
    "const data = await fetch(url).then(r => r.json());",
    "export function sum(a: number, b: number) { return a + b }",
    "fn main() { let v: Vec<i32> = vec![1, 2, 3]; }",
    "if err != nil { return nil, err }",
    "public static void main(String[] args) {",
    "SELECT id, name FROM users WHERE active = 1;",
    "x = [f(y) for y in ys if y]",
    "git rebase -i HEAD~3",
    "class Cache: def __init__(self): self.items = {}",
    "while (i < n) { i++; }",
    "import pandas as pd; df = pd.read_csv('a.csv')",
    "return self.items.get(key, default)",
    "let x = map.get(&k).unwrap();",
    "npm run build",
)  # fmt: skip
ERRORS = (
    "TypeError: 'NoneType' object is not subscriptable",
    "Traceback (most recent call last):",
    "KeyError: 'id'",
    "IndexError: list index out of range",
    "Uncaught TypeError: Cannot read properties of undefined (reading 'map')",
    "error[E0382]: borrow of moved value: `v`",
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "java.lang.NullPointerException at Main.java:42",
    "ModuleNotFoundError: No module named 'requests'",
    "segmentation fault (core dumped)",
    "AssertionError: expected 3, got 4",
    "ERROR 1064 (42000): You have an error in your SQL syntax",
)  # fmt: skip
# QWERTY neighbours for the "wrong key" typo.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)) for row in _ROWS for i, ch in enumerate(row)
}
_WORD = re.compile(r"[A-Za-z\u00c0-\u024f\u0400-\u04ff]{4,}")


def variants(text: str, label: str, copies: int = 1) -> list[str]:
    """`copies` typed-like variants of `text` (fewer when a change gives the same text)."""
    rng = random.Random(hashlib.sha256(f"{label}\0{text}".encode()).digest())
    out: list[str] = []
    for _ in range(copies):
        changes = [_case, _typos, _mention, _code] + ([_error] if label in ERROR_LABELS else [])
        picked = rng.sample(changes, rng.randint(1, 3))
        # Typos and case before the pasted parts, so code and paths stay as written.
        order = [c for c in (_case, _typos, _mention, _code, _error) if c in picked]
        varied = text
        for change in order:
            varied = change(varied, rng)
        if varied != text and varied not in out:
            out.append(varied)
    return out


def augment(texts: list[str], labels: list[str], copies: int = 1) -> tuple[list[str], list[str]]:
    """The rows and their variants (the originals first, then each row's variants)."""
    more_texts, more_labels = list(texts), list(labels)
    if copies <= 0:
        return more_texts, more_labels
    for text, label in zip(texts, labels, strict=True):
        for varied in variants(text, label, copies):
            more_texts.append(varied)
            more_labels.append(label)
    return more_texts, more_labels


def _case(text: str, rng: random.Random) -> str:
    return text.lower().rstrip("?.!。？！ ")


def _typos(text: str, rng: random.Random) -> str:
    words = list(_WORD.finditer(text))
    if not words:
        return text
    chars = list(text)
    for match in rng.sample(words, min(len(words), rng.randint(1, 2))):
        i = rng.randrange(match.start() + 1, match.end() - 1)  # not the first letter: people get that right
        kind = rng.randrange(4)
        if kind == 0:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == 1:
            chars[i] = ""
        elif kind == 2:
            chars[i] = chars[i] * 2
        else:
            near = _NEIGHBOURS.get(chars[i].lower())
            chars[i] = rng.choice(near) if near else ""
    return "".join(chars)


def _mention(text: str, rng: random.Random) -> str:
    mention = rng.choice(MENTIONS)
    return f"{mention} {text}" if rng.random() < 0.5 else f"{text} {mention}"


def _code(text: str, rng: random.Random) -> str:
    code = rng.choice(CODE)
    return rng.choice((f"{text}: {code}", f"{text}\n{code}", f"{code}\n{text}", f"{text} `{code}`"))


def _error(text: str, rng: random.Random) -> str:
    error = rng.choice(ERRORS)
    return rng.choice((f"{text}\n{error}", f"{error}\n{text}", f"{text}: {error}"))
