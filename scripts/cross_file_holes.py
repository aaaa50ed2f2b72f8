"""Cross-file completion holes, built at run time from real multi-file packages (not ours).

The rule, fixed so anyone can rerun it (`python scripts/cross_file_holes.py --seed 15`):

- a package is a folder of `.py` files (the standard library's `email`, `json`, `asyncio`,
  `http`, `importlib`, `logging`, `concurrent`, and installed `httpx` and `attr`);
- a file F of it (2-80 KB) imports a name N from another module M of the same package
  (`from .m import N`, `from pkg.m import N`, `from . import m` then `m.N`,
  `import pkg.m as x` then `x.N`, `import pkg` then `pkg.N` from `pkg/__init__.py`), and M
  defines N at its top level (`def`, `class` or an assignment: defined there, not re-exported);
- a hole is a code line of F (not an import, comment or docstring; 12-100 characters,
  ASCII) that uses N; it is cut where the first such N starts (after `m.` for a module
  alias): the model must write N and the rest of the line;
- each package gives at most `per_package` holes, drawn with `random.Random(f"{seed}:{pkg}")`
  from all of its candidates, then sorted by file and line.

What the editor would have: F with the hole's line cut at the cursor (the rest of the file
as it is), and the files F imports from the package opened before it.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import random
import re
from pathlib import Path
from typing import Any

PACKAGES = ("email", "json", "asyncio", "http", "importlib", "logging", "concurrent", "httpx", "attr")
MIN_BYTES, MAX_BYTES = 2_000, 80_000


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_file(package: Path, parts: list[str]) -> Path | None:
    """The file of module `parts` (relative to `package`), a module or a sub-package."""
    target = package.joinpath(*parts) if parts else package
    for candidate in (target.with_name(target.name + ".py") if parts else None, target / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def top_level_names(path: Path) -> set[str]:
    """Names `path` defines at its top level (def, class, assignment), not imports."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def imported_from_package(path: Path, package: Path) -> tuple[dict[str, Path], dict[str, Path], set[int]]:
    """({name: defining file}, {module alias: module file}, import line numbers) for what
    `path` imports from other modules of `package` (any depth in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: dict[str, Path] = {}
    modules: dict[str, Path] = {}
    import_lines: set[int] = set()
    here = path.parent
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.parent
                parts = (node.module or "").split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == package.name:
                base, parts = package, node.module.split(".")[1:]
            else:
                continue
            if not base.is_relative_to(package):
                continue
            rel = list(base.relative_to(package).parts) + [p for p in parts if p]
            module = _module_file(package, rel)
            import_lines.update(range(node.lineno - 1, (node.end_lineno or node.lineno)))
            for alias in node.names:
                binding = alias.asname or alias.name
                submodule = _module_file(package, [*rel, alias.name])
                if submodule is not None and submodule != path:
                    modules[binding] = submodule
                elif module is not None and module != path and alias.name in top_level_names(module):
                    names[binding] = module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != package.name:
                    continue
                import_lines.update(range(node.lineno - 1, (node.end_lineno or node.lineno)))
                module = _module_file(package, parts[1:])
                if module is None or module == path:
                    continue
                if alias.asname:
                    modules[alias.asname] = module
                elif len(parts) == 1:
                    modules[parts[0]] = module
    return names, modules, import_lines


def _string_lines(tree: ast.AST) -> set[int]:
    return {
        number
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for number in range(node.lineno - 1, (node.end_lineno or node.lineno))
    }


def candidates(package: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(package.rglob("*.py")):
        if "test" in path.parts or "tests" in path.parts or not MIN_BYTES <= path.stat().st_size <= MAX_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            names, modules, import_lines = imported_from_package(path, package)
            skip = import_lines | _string_lines(ast.parse(text))
        except (SyntaxError, UnicodeDecodeError):
            continue
        attrs_of = {alias: top_level_names(file) for alias, file in modules.items()}
        alternatives = [rf"(?<![.\w])(?P<name>{'|'.join(map(re.escape, sorted(names)))})\b"] if names else []
        if modules:
            alternatives.append(rf"(?<![.\w])(?P<mod>{'|'.join(map(re.escape, sorted(modules)))})\.(?P<attr>\w+)")
        if not alternatives:
            continue
        pattern = re.compile("|".join(alternatives))
        for number, line in enumerate(text.split("\n")):
            stripped = line.strip()
            if number in skip or not 12 <= len(stripped) <= 100 or not line.isascii():
                continue
            if stripped.startswith(("#", "@", '"', "'")):
                continue
            for match in pattern.finditer(line):
                if match.group("name") if names else None:
                    cut, used, source = match.start("name"), match.group("name"), names[match.group("name")]
                elif modules and match.group("mod") and match.group("attr") in attrs_of[match.group("mod")]:
                    cut, used, source = match.start("attr"), match.group("attr"), modules[match.group("mod")]
                else:
                    continue
                if "#" in line[:cut] or line[:cut].count('"') % 2 or line[:cut].count("'") % 2:
                    break  # in a comment or a string
                truth = line[cut:].rstrip()
                if len(truth) >= 4:
                    found.append(
                        {
                            "package": package.name,
                            "root": package.parent,
                            "path": path,
                            "line": number,
                            "column": cut,
                            "name": used,
                            "defined_in": source,
                            "truth": truth,
                        }
                    )
                break
    return found


def holes(per_package: int, seed: int = 15, packages: tuple[str, ...] = PACKAGES) -> list[dict[str, Any]]:
    chosen: list[dict[str, Any]] = []
    for name in packages:
        package = package_dir(name)
        if package is None:
            continue
        pool = candidates(package)
        rng = random.Random(f"{seed}:{name}")
        chosen += sorted(rng.sample(pool, min(per_package, len(pool))), key=lambda h: (str(h["path"]), h["line"]))
    return chosen


def imported_files(path: Path) -> list[Path]:
    """The files of its own package that `path` imports (what an editor would have open)."""
    for name in PACKAGES:
        package = package_dir(name)
        if package is not None and path.is_relative_to(package):
            names, modules, _ = imported_from_package(path, package)
            return sorted(set(names.values()) | set(modules.values()))
    return []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="list the cross-file holes")
    parser.add_argument("--per-package", type=int, default=10)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    for hole in holes(args.per_package, args.seed):
        print(json.dumps({key: str(value) if isinstance(value, Path) else value for key, value in hole.items()}))
