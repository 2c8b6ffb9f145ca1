"""The repository's import graph has no cycles, and shipped code never imports the runner or the tests.

Every ``.py`` outside ``.venv``/``tests`` is parsed (imports inside functions count too); relative
imports and absolute imports of the repository's own top-level packages are resolved to modules.
The pack is imported by ComfyUI as one package (relative imports), ``headless`` is a top-level package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", "tests", ".comfyui", ".cache", "test-artifacts", "__pycache__", "node_modules"}
DEV_ONLY = {"tests", "benchmarks", "scripts", "headless"}


def _modules() -> dict[str, Path]:
    """Dotted module name (relative to the repository root) -> file."""
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if any(p in SKIP or p.startswith(".") for p in rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The longest repository module that ``name`` (or a prefix of it) names."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in mods:
            return cand
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the repository modules it imports."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    prefix = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    prefix = node.module or ""
                for a in node.names:  # a submodule when it is one, else the module the name comes from
                    sub = f"{prefix}.{a.name}" if prefix else a.name
                    targets.append(sub if sub in mods else prefix)
            for t in targets:
                r = _resolve(t, mods) if t else None
                if r is not None and r != mod:
                    graph[mod].add(r)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_find_cycle_finds_a_loop_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_repository_has_no_import_cycle():
    graph = import_graph()
    assert "sampler.comfy_adapter" in graph and "sampler.model_probe" in graph["sampler.comfy_adapter"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_shipped_code_never_imports_the_runner_or_the_tests():
    bad = [f"{m} imports {n}" for m, deps in import_graph().items() if m.split(".")[0] not in DEV_ONLY
           for n in deps if n.split(".")[0] in ("headless", "tests")]
    assert not bad, "\n".join(bad)


MAX_LINES = 500  # a module longer than this is split by what its parts are for


def test_no_module_outside_the_tests_is_over_500_lines():
    long = {m: n for m, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
