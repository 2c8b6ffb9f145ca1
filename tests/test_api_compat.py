"""V3 API stability: one import point (nodes/_api.py), a versioned module first, only known arguments."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _api(pack):
    return sys.modules[f"{pack.__name__}.nodes._api"]


def test_pack_takes_the_versioned_api_when_comfyui_has_it(pack):
    api = _api(pack)
    expected = "comfy_api.v0_0_2" if importlib.util.find_spec("comfy_api.v0_0_2") else "comfy_api.latest"
    assert api.API_MODULE == expected
    for name in ("_common", "loaders", "loss_nodes", "measure", "sampler_nodes"):
        module = sys.modules[f"{pack.__name__}.nodes.{name}"]
        assert module.io is api.io, f"nodes/{name}.py does not use nodes/_api.py's io"


def test_only_the_api_module_imports_comfy_api():
    """Every other shipped module takes io/ui/ComfyExtension from nodes/_api.py."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "benchmarks", "scripts") or rel.parts[0].startswith(".") or rel == Path("nodes/_api.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            offenders += [f"{rel}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "comfy_api"]
    assert not offenders, "import the V3 API from nodes/_api.py instead:\n" + "\n".join(offenders)


@pytest.mark.slow  # starts ComfyUI in a subprocess (~40 s on two cores)
def test_pack_loads_when_the_versioned_api_is_missing(comfy_root, comfy_base):
    """A ComfyUI without comfy_api.v0_0_2 (made unimportable in a subprocess): every node still registers."""
    script = f'''
import sys
from pathlib import Path
sys.path.append({str(ROOT)!r})
from headless.testbed import base as hc
hc.configure_comfy(Path({str(comfy_root)!r}), Path({str(comfy_base)!r}))
import nodes  # ComfyUI's own start-up imports the versioned API for itself first
sys.modules["comfy_api.v0_0_2"] = None  # from here on `import comfy_api.v0_0_2` raises ImportError
hc.init_nodes()
api = [m for name, m in sys.modules.items() if name.endswith("style_guidance.nodes._api")]
print("API", api[0].API_MODULE if api else None)
print("REGISTERED", ",".join(sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("StyleGuidance"))))
'''
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("API ", "REGISTERED ")))
    assert lines.get("API") == "comfy_api.latest", out[-3000:]
    import nodes

    expected = sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("StyleGuidance"))
    assert lines["REGISTERED"].split(",") == expected, out[-3000:]


def _running_schema_parameters() -> set[str]:
    from comfy_api.latest import io

    return {f.name for f in dataclasses.fields(io.Schema)} if dataclasses.is_dataclass(io.Schema) \
        else set(inspect.signature(io.Schema).parameters)


def test_optional_schema_args_keeps_only_what_the_running_comfyui_knows(pack):
    api = _api(pack)
    known = _running_schema_parameters()
    args = api.optional_schema_args(search_aliases=["style transfer"], description="d", not_a_schema_argument=1)
    assert "description" in args and "not_a_schema_argument" not in args
    assert ("search_aliases" in args) == ("search_aliases" in known)
    api.io.Schema(node_id="StyleGuidanceProbe", **args)  # constructs on this ComfyUI


def _io_target(func: ast.expr, io) -> object | None:
    """The io class a call like io.Schema(...) or io.Float.Input(...) constructs, else None."""
    chain = []
    while isinstance(func, ast.Attribute):
        chain.append(func.attr)
        func = func.value
    if not (isinstance(func, ast.Name) and func.id == "io" and chain):
        return None
    target = io
    for attr in reversed(chain):
        target = getattr(target, attr, None)
        if target is None:
            return None
    return target


def test_node_modules_pass_only_arguments_this_comfyui_has(pack):
    """Every keyword given to io.Schema / io.<Type>.Input / .Output exists here; newer ones go through
    optional_schema_args (a pack that passes an unknown argument loses its nodes at load)."""
    io = _api(pack).io
    problems = []
    for path in sorted((ROOT / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            target = _io_target(node.func, io)
            if target is None or not callable(target):
                continue
            try:
                params = inspect.signature(target).parameters
            except (TypeError, ValueError):
                continue
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            for kw in node.keywords:
                if kw.arg is not None and kw.arg not in params:
                    problems.append(f"nodes/{path.name}:{node.lineno}: {ast.unparse(node.func)}(... {kw.arg}=...) "
                                    "is unknown to this ComfyUI; pass it through optional_schema_args or drop it")
    assert not problems, "\n".join(problems)
