"""Which parser checks a file, chosen by its extension: a registry, not an if/elif chain.

Python is parsed with the standard library's `ast` and the tree compiled (the interpreter's
own grammar and checks, so what passes is what Python runs). Everything else goes through tree-sitter with the
per-language grammar wheels (`tree-sitter-typescript`, `-javascript`, `-rust`, `-go`): they
ship the compiled grammar, so nothing is downloaded at run time. A grammar is loaded the first
time a file of its language is checked (about 1 ms) and kept.

Tree-sitter always produces a tree; a syntax error shows up as an ERROR or MISSING node. A
`Parser.parse` of a 2,000-line file takes a few milliseconds, so the whole file is parsed on
every check rather than the edited range alone (a range is rarely valid on its own: a method
body, an `else` branch).

Add a language: one `Language` line in `LANGUAGES` (and its grammar wheel in pyproject).
"""

from __future__ import annotations

import ast
import importlib
import os
import threading
import warnings
from collections.abc import Callable

import attrs


@attrs.frozen
class SyntaxProblem:
    """The first syntax error in a text: 1-based line and column, and what is wrong."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def python_problem(text: str) -> SyntaxProblem | None:
    """The first error Python finds, or None when the text is valid Python.

    `ast.parse` and then `compile` of the tree: the grammar alone accepts a `return` outside a
    function or a misplaced `from __future__`, which the compiler refuses (about 10 ms for
    2,000 lines; nothing runs).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like are warnings, not errors
            compile(ast.parse(text), "<edit>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return SyntaxProblem(line=exc.lineno or 1, column=exc.offset or 1, message=exc.msg)
    except (ValueError, RecursionError) as exc:  # null bytes; absurdly deep nesting
        return SyntaxProblem(line=1, column=1, message=str(exc))
    return None


_parsers: dict[tuple[str, str], object] = {}
_parsers_lock = threading.Lock()


def _tree_sitter_parser(module: str, function: str) -> object:
    with _parsers_lock:
        key = (module, function)
        if key not in _parsers:
            import tree_sitter

            grammar = getattr(importlib.import_module(module), function)()
            _parsers[key] = tree_sitter.Parser(tree_sitter.Language(grammar))
        return _parsers[key]


def tree_sitter_checker(module: str, function: str = "language") -> Callable[[str], SyntaxProblem | None]:
    """A checker for one tree-sitter grammar: `module.function()` gives the compiled language."""

    def problem(text: str) -> SyntaxProblem | None:
        parser = _tree_sitter_parser(module, function)
        with _parsers_lock:  # a Parser is not safe to share between threads
            tree = parser.parse(text.encode("utf-8"))  # type: ignore[attr-defined]
        node = tree.root_node
        if not node.has_error:
            return None
        # Descend only into subtrees that contain an error: the first ERROR or MISSING node.
        while True:
            if node.is_missing:
                return _problem(node, f"missing {node.type!r}")
            if node.is_error:
                return _problem(node, "unexpected " + _snippet(node.text))
            child = next((c for c in node.children if c.has_error or c.is_missing), None)
            if child is None:
                return _problem(node, "syntax error")
            node = child

    return problem


def _problem(node: object, message: str) -> SyntaxProblem:
    row, column = node.start_point  # type: ignore[attr-defined]
    return SyntaxProblem(line=row + 1, column=column + 1, message=message)


def _snippet(text: bytes | None) -> str:
    words = (text or b"").decode("utf-8", "replace").split()
    shown = " ".join(words)[:40]
    return repr(shown) if shown else "text"


@attrs.frozen
class Language:
    name: str
    extensions: tuple[str, ...]
    problem: Callable[[str], SyntaxProblem | None]


LANGUAGES: tuple[Language, ...] = (
    Language("Python", (".py", ".pyi", ".pyw"), python_problem),
    Language("TypeScript", (".ts", ".mts", ".cts"),
             tree_sitter_checker("tree_sitter_typescript", "language_typescript")),  # fmt: skip
    Language("TSX", (".tsx",), tree_sitter_checker("tree_sitter_typescript", "language_tsx")),
    Language("JavaScript", (".js", ".mjs", ".cjs", ".jsx"), tree_sitter_checker("tree_sitter_javascript")),
    Language("Rust", (".rs",), tree_sitter_checker("tree_sitter_rust")),
    Language("Go", (".go",), tree_sitter_checker("tree_sitter_go")),
)

BY_EXTENSION: dict[str, Language] = {ext: lang for lang in LANGUAGES for ext in lang.extensions}


def for_path(path: str) -> Language | None:
    """The language of a file path or URI by its extension (case-insensitive), or None."""
    return BY_EXTENSION.get(os.path.splitext(path)[1].lower())
