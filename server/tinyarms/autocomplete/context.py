"""Project context for autocomplete: what the other files say, gathered off the keystroke path.

A 270M model completing `headers.` cannot know `parse_header` exists unless the prompt
says so. Two bounded sources, as the best local peers do (llama.vim's ring buffer, Tabby's
declaration snippets):

- a ring buffer of chunks (`context_chunk_lines` lines) of recently opened, edited and
  saved files, newest last; a chunk that shares 90% of its lines with an older one
  replaces it (the same function seen twice is one chunk);
- for Python, the definitions the current file imports from the workspace
  (`from pkg.mod import name`, `import pkg.mod`, relative imports): resolved to files
  inside the workspace folders only (symlinks resolved first; a path that lands outside
  is never read), taken from the editor's buffer when the file is open, parsed with
  `ast` (never imported, never executed); the signature and first docstring line of each
  imported name, or of a module's top-level definitions.

The block is capped at `context_tokens` (estimated at 2 characters a token: Gemma 3 averages
3.5-4 on ordinary code, but numbers cost a token a digit, and digit-heavy code measured 2.0:
754 real tokens for a block estimated at 505 with 3 characters a token). Definitions come
first (rendered last, nearest the file), then the newest chunks. It is rebuilt only when its
inputs change, between bursts of typing (see features/autocomplete.py), so warm keystrokes
keep the KV cache of the whole block: the block is the start of every prompt of the file.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 2  # conservative: the cap holds for the real tokenizer (checked over LSP in the tests)
MAX_FILE_BYTES = 256_000  # ast.parse of 256 KB takes ~30 ms; larger files are not read for definitions
SIMILAR = 0.9  # chunks sharing this share of lines are one chunk
MAX_CHUNK_SOURCE_LINES = 100_000  # a bigger file (a log, generated code) gives no chunks
MAX_NAMES = 24  # imported names rendered per file
MAX_MODULE_DEFS = 12  # definitions shown for `import pkg.mod`
MAX_CLASS_METHODS = 8
FOLLOW_DEPTH = 2  # `from pkg import name` where pkg/__init__.py re-exports it: follow this far
COMMENTS = {
    ".py": "#",
    ".pyi": "#",
    ".rb": "#",
    ".sh": "#",
    ".toml": "#",
    ".yaml": "#",
    ".yml": "#",
    ".r": "#",
    ".lua": "--",
    ".sql": "--",
    ".hs": "--",
}
DEFAULT_COMMENT = "//"  # C, C++, Go, Rust, Java, JavaScript, TypeScript, C#, Kotlin, Swift...


def comment_for(path: str | None) -> str:
    return COMMENTS.get(Path(path or "").suffix.lower(), DEFAULT_COMMENT)


@attrs.frozen
class Chunk:
    uri: str  # the document it came from (excluded from that document's own block)
    label: str  # its path, relative to the workspace folder when inside one
    start: int  # first line
    text: str


@attrs.frozen
class ContextBlock:
    """What goes before the current file: (label, text) files in prompt order, and the
    same as path-labelled comment blocks for models without repository tokens."""

    files: tuple[tuple[str, str], ...]
    current: str  # the current file's label
    comments: str  # "# Path: a.py\n# ...\n# Path: current.py\n" (empty when there is no context)
    chars: int

    @property
    def tokens_estimate(self) -> int:
        return -(-self.chars // CHARS_PER_TOKEN)


def _similarity(a: list[str], b: list[str]) -> float:
    """The share of lines two chunks have in common (llama.vim's measure)."""
    if not a or not b:
        return 0.0
    common = len(set(a) & set(b))
    return 2 * common / (len(set(a)) + len(set(b)))


class RingBuffer:
    """The newest chunks of recently used files; adding one is O(size)."""

    def __init__(self, size: int = 16, chunk_lines: int = 32) -> None:
        self.size = size
        self.chunk_lines = chunk_lines
        self.chunks: list[Chunk] = []
        self.version = 0  # bumped on every change

    def add(self, uri: str, label: str, lines: list[str], around: int) -> bool:
        """A chunk of `lines` centred on line `around`; False when it added nothing new."""
        if self.size <= 0 or not lines or len(lines) > MAX_CHUNK_SOURCE_LINES:
            return False
        start = max(0, min(around - self.chunk_lines // 2, len(lines) - self.chunk_lines))
        body = lines[start : start + self.chunk_lines]
        while body and not body[-1].strip():
            body = body[:-1]
        meaningful = [line.strip() for line in body if line.strip()]
        if len(meaningful) < 3:
            return False
        text = "\n".join(line[:400] for line in body)
        if "\x00" in text or sum(ch < " " and ch not in "\t\n\r\x0c" for ch in text) > len(text) // 20:
            return False  # binary: nothing a model can use
        if any(c.uri == uri and c.text == text for c in self.chunks):
            return False
        kept = [c for c in self.chunks if _similarity(meaningful, _meaningful(c.text)) < SIMILAR]
        kept.append(Chunk(uri, label, start, text))
        self.chunks = kept[-self.size :]
        self.version += 1
        return True

    def drop(self, uri: str) -> None:
        before = len(self.chunks)
        self.chunks = [c for c in self.chunks if c.uri != uri]
        if len(self.chunks) != before:
            self.version += 1

    def others(self, uri: str) -> list[Chunk]:
        """Chunks of every file but `uri`, newest last."""
        return [c for c in self.chunks if c.uri != uri]


def _meaningful(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


# -- Python imports ---------------------------------------------------------------------


@attrs.frozen
class Import:
    module: str  # dotted, without the leading dots
    level: int  # 0 absolute, 1 for `from . import`, ...
    names: tuple[str, ...]  # () for `import pkg.mod`


_IMPORT_LINE = re.compile(r"^\s*(from\s+[.\w]+\s+import\b|import\s+\w)")


def imports_of(source: str) -> list[Import]:
    """The imports of a Python file. A file being typed rarely parses: then only its
    import statements are parsed (a parenthesised list may span lines)."""
    try:
        if len(source) > MAX_FILE_BYTES:
            raise ValueError("too big to parse whole")
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        tree = ast.parse(_import_lines(source))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            found.append(Import(node.module or "", node.level, names))
        elif isinstance(node, ast.Import):
            found += [Import(alias.name, 0, ()) for alias in node.names]
    return found


def _import_lines(source: str) -> str:
    statements: list[str] = []
    lines = source.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not _IMPORT_LINE.match(line):
            continue
        statement = line.strip()
        while "(" in statement and ")" not in statement and index < len(lines) and len(statement) < 4000:
            statement += " " + lines[index].strip()
            index += 1
        try:
            ast.parse(statement)
        except (SyntaxError, ValueError):
            continue
        statements.append(statement)
    return "\n".join(statements)


class Definitions:
    """Signatures and docstring lines of workspace modules, cached by file state."""

    def __init__(self, roots: Iterable[Path], read_open: Callable[[Path], str | None]) -> None:
        self.roots = [root.resolve() for root in roots]
        self.read_open = read_open  # an open editor buffer's text, else None
        self._cache: dict[Path, tuple[object, dict[str, str], list[str]]] = {}

    def inside(self, path: Path) -> Path | None:
        """`path` with symlinks resolved, if it is a file inside a workspace folder."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return None
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            return None
        return real if real.is_file() else None

    def resolve(self, module: str, level: int, importer: Path) -> Path | None:
        parts = [p for p in module.split(".") if p]
        if level:
            base = importer.parent
            for _ in range(level - 1):
                base = base.parent
            bases = [base]
        else:
            bases = [importer.parent, *self.roots, *(root / "src" for root in self.roots)]
        for base in bases:
            target = base.joinpath(*parts) if parts else base
            for candidate in (target.with_name(target.name + ".py") if parts else None, target / "__init__.py"):
                if candidate is not None and (found := self.inside(candidate)):
                    return found
        return None

    def summary(self, path: Path) -> tuple[dict[str, str], list[str]]:
        """({name: rendered definition}, names in file order) of a module's top level."""
        text = self.read_open(path)
        try:
            stat = path.stat()
        except OSError:
            return {}, []
        state: object = ("buffer", hash(text)) if text is not None else (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached and cached[0] == state:
            return cached[1], cached[2]
        if text is None:
            if stat.st_size > MAX_FILE_BYTES:
                return {}, []
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return {}, []
        rendered: dict[str, str] = {}
        order: list[str] = []
        if len(text) <= MAX_FILE_BYTES:
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError, RecursionError):
                tree = None
            if tree is not None:
                lines = text.split("\n")
                for node in tree.body:
                    for name, value in _render(node, lines):
                        if name not in rendered:
                            order.append(name)
                        rendered[name] = value
                    if isinstance(node, ast.ImportFrom):
                        for alias in node.names:  # re-exports: followed on demand
                            rendered.setdefault(
                                "\0from:" + (alias.asname or alias.name),
                                f"{node.level}:{node.module or ''}:{alias.name}",
                            )
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[path] = (state, rendered, order)
        return rendered, order

    def lookup(self, path: Path, name: str, depth: int = 0) -> str | None:
        rendered, _ = self.summary(path)
        if name in rendered:
            return rendered[name]
        reexport = rendered.get("\0from:" + name)
        if reexport and depth < FOLLOW_DEPTH:
            level, module, original = reexport.split(":", 2)
            target = self.resolve(module, int(level), path)
            if target is not None and target != path:
                return self.lookup(target, original, depth + 1)
        return None

    def for_file(self, source: str, path: Path) -> list[tuple[Path, list[str]]]:
        """(file, rendered definitions) for what `source` (the file at `path`) imports."""
        out: dict[Path, list[str]] = {}
        for item in imports_of(source):
            module_file = self.resolve(item.module, item.level, path)
            if not item.names:
                if module_file is not None and module_file != path:
                    rendered, order = self.summary(module_file)
                    public = [rendered[n] for n in order if not n.startswith("_")][:MAX_MODULE_DEFS]
                    out.setdefault(module_file, []).extend(public)
                continue
            for name in item.names:
                submodule = self.resolve(f"{item.module}.{name}" if item.module else name, item.level, path)
                if submodule is not None and submodule != path and submodule != module_file:
                    rendered, order = self.summary(submodule)  # `from pkg import mod`
                    public = [rendered[n] for n in order if not n.startswith("_")][:MAX_MODULE_DEFS]
                    out.setdefault(submodule, []).extend(public)
                elif module_file is not None and module_file != path:
                    text = self.lookup(module_file, name)
                    if text:
                        out.setdefault(module_file, []).append(text)
        result = []
        seen: set[str] = set()  # a name re-exported by a package's __init__ is shown once
        for file, texts in out.items():
            unique = [t for t in dict.fromkeys(texts) if t not in seen][:MAX_NAMES]
            seen.update(unique)
            if unique:
                result.append((file, unique))
        return result


def _render(node: ast.stmt, lines: list[str]) -> list[tuple[str, str]]:
    """(name, text) for a top-level definition: signature, docstring line, `...`."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [(node.name, _function(node, lines))]
    if isinstance(node, ast.ClassDef):
        head = _signature(node, lines)
        parts = [head]
        doc = _doc_line(node)
        if doc:
            parts.append(f'    """{doc}"""')
        methods = [
            n
            for n in node.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (not n.name.startswith("_") or n.name == "__init__")
        ]
        parts += [_function(m, lines) for m in methods[:MAX_CLASS_METHODS]]
        if len(parts) == 1:
            parts.append("    ...")
        return [(node.name, "\n".join(parts))]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            return []
        end = node.end_lineno or node.lineno
        text = "\n".join(lines[node.lineno - 1 : end])
        if end - node.lineno > 2 or len(text) > 200:
            text = lines[node.lineno - 1].split("=", 1)[0].rstrip() + " = ..."
        return [(name, text) for name in names]
    return []


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: list[str]) -> str:
    """The `def ...:` / `class ...:` lines as written (no decorators, no body)."""
    first = node.lineno - 1
    body_line = node.body[0].lineno - 1 if node.body else first
    end = max(first, body_line - 1) if body_line > first else first
    text = "\n".join(line.rstrip() for line in lines[first : end + 1])
    if body_line == first:  # `def f(): return 1`: keep what is before the body
        text = text[: text.find(":", text.find(")") if ")" in text else 0) + 1] or text
    return text


def _doc_line(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    doc = ast.get_docstring(node, clean=True) or ""
    first = doc.strip().split("\n", 1)[0].strip()
    return first.replace('"""', "'''")[:160]


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str:
    """Signature as written (a method keeps its indentation), docstring line, `...`."""
    line = lines[node.lineno - 1]
    body_indent = line[: len(line) - len(line.lstrip())] + "    "
    parts = [_signature(node, lines)]
    doc = _doc_line(node)
    if doc:
        parts.append(f'{body_indent}"""{doc}"""')
    parts.append(f"{body_indent}...")
    return "\n".join(parts)


# -- the block ------------------------------------------------------------------------------


class Project:
    """The ring buffer and the definitions of one workspace, and the block of each file."""

    def __init__(self, *, size: int = 16, chunk_lines: int = 32, max_tokens: int = 512) -> None:
        self.ring = RingBuffer(size, chunk_lines)
        self.max_tokens = max_tokens
        self.roots: list[Path] = []
        self._definitions: Definitions | None = None
        self.blocks: dict[str, ContextBlock | None] = {}

    def configure(self, *, size: int, chunk_lines: int, max_tokens: int) -> None:
        self.ring.size, self.ring.chunk_lines, self.max_tokens = size, chunk_lines, max_tokens
        self.ring.chunks = self.ring.chunks[-size:] if size > 0 else []

    def set_roots(self, roots: list[Path]) -> None:
        """The workspace folders: imports resolve only to files inside them."""
        resolved = [root.resolve() for root in roots]
        if resolved != self.roots:
            self.roots = resolved
            self._definitions = None

    def label(self, path: Path | None, uri: str) -> str:
        return label_of(path, self.roots, uri.rsplit("/", 1)[-1])

    def build(self, uri: str, path: Path | None, source: str, open_texts: dict[Path, str]) -> ContextBlock | None:
        """The block for `uri` now (CPU-bound: parses imported files; call off the loop).
        `open_texts`: the editor's buffers by resolved path, read instead of the disk.
        Without workspace folders, the file's own folder is the workspace."""
        roots = self.roots or ([path.parent.resolve()] if path else [])
        if self._definitions is None or self._definitions.roots != roots:
            self._definitions = Definitions(roots, lambda p: None)
        definitions = self._definitions
        definitions.read_open = open_texts.get
        found: list[tuple[str, list[str]]] = []
        if path is not None and path.suffix in (".py", ".pyi"):
            try:
                found = [(self.label(file, ""), text) for file, text in definitions.for_file(source, path)]
            except (SyntaxError, ValueError, RecursionError, OSError) as exc:
                log.debug("autocomplete: imports of %s not read: %s", path, exc)
        return assemble(
            self.label(path, uri),
            found,
            self.ring.others(uri),
            max_tokens=self.max_tokens,
            comment=comment_for(str(path) if path else uri),
        )


def label_of(path: Path | None, roots: Iterable[Path], fallback: str) -> str:
    if path is None:
        return fallback
    for root in roots:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return path.name


def assemble(
    current: str,
    definitions: list[tuple[str, list[str]]],
    chunks: list[Chunk],
    *,
    max_tokens: int,
    comment: str,
) -> ContextBlock | None:
    """The block for one file within `max_tokens`: definitions first, then the newest chunks;
    in the prompt oldest chunk first, definitions last (nearest the file), even when a chunk
    shows the same code (the repetition next to the file helped the 270M model; measured by
    hand on a parse_header case). Sizes are counted as the commented form (the longer one:
    `comment` and a space on every line)."""
    overhead = len(comment) + 1
    budget = max(0, max_tokens) * CHARS_PER_TOKEN - len(f"{comment} Path: {current}\n")
    chosen_defs: list[tuple[str, str]] = []
    chosen_chunks: list[tuple[str, str]] = []
    for label, text, into in [(label, "\n".join(texts), chosen_defs) for label, texts in definitions] + [
        (c.label, c.text, chosen_chunks) for c in reversed(chunks)
    ]:
        head = len(f"{comment} Path: {label}\n")
        text = _fit(text, budget - head, overhead)
        if not text:
            if into is chosen_chunks:
                break
            continue
        into.append((label, text))
        budget -= head + len(text) + 1 + overhead * (text.count("\n") + 1)
    files = tuple(reversed(chosen_chunks)) + tuple(chosen_defs)
    if not files:
        return None
    commented = "".join(
        f"{comment} Path: {label}\n" + "".join(f"{comment} {line}".rstrip() + "\n" for line in text.split("\n"))
        for label, text in files
    )
    commented += f"{comment} Path: {current}\n"
    return ContextBlock(files, current, commented, len(commented))


def _fit(text: str, budget: int, overhead: int = 0) -> str:
    """`text` cut at a line end to fit `budget` characters, `overhead` more per line
    ("" when fewer than 3 lines fit)."""
    if len(text) + 1 + overhead * (text.count("\n") + 1) <= budget:
        return text
    kept: list[str] = []
    size = 0
    for line in text.split("\n"):
        if size + len(line) + 1 + overhead > budget:
            break
        kept.append(line)
        size += len(line) + 1 + overhead
    return "\n".join(kept) if len([k for k in kept if k.strip()]) >= 3 else ""
