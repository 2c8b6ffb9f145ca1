"""The Comfy registry's view of the pack: comfy-cli's own checks, the archive, metadata, dependencies.

``comfy node validate`` and ``comfy node pack`` (the comfy-cli commands a publisher runs, and
the checks the registry applies on publish) run offline on a copy of the working tree:
telemetry, the consent prompt and the update check are switched off by environment
variables, stdin is closed and HOME is a temporary folder, so nothing is written to the
user's home and nothing is sent anywhere.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# Folders whose code never ships to users (left out of the registry archive by .comfyignore).
DEV_ONLY = ("tests", "benchmarks", "scripts", ".ci", "docs", "test-artifacts")
OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",  # comfy-cli: no telemetry, no consent prompt
    "COMFY_NO_TELEMETRY": "1",
    "COMFY_NO_UPDATE_CHECK": "1",  # no PyPI look-up for a newer comfy-cli
}


def _tree_files() -> list[str]:
    """The files a clone of the working tree has: tracked ones plus new, not ignored ones."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True).stdout.decode()
        return [f for f in out.split("\0") if f and (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but the usual clutter
        skip = {".git", ".venv", "__pycache__", "test-artifacts", "output", ".comfyui", ".cache"}
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A fresh git repository holding a copy of the working tree (what a publisher runs comfy-cli in)."""
    dest = tmp_path_factory.mktemp("registry") / "style_guidance"
    for rel in _tree_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    return dest


def _comfy(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("comfy_cli") is None:
        pytest.fail("comfy-cli is not installed: it is in requirements-test.txt (run scripts/setup_env.sh)")
    home.mkdir(exist_ok=True)
    env = {**os.environ, **OFFLINE_ENV, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    return subprocess.run([sys.executable, "-m", "comfy_cli", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def test_comfy_node_validate_passes(checkout, tmp_path):
    """`comfy node validate`: pyproject parsed as the registry does, plus its security scan (exec/eval/`;`)."""
    proc = _comfy(["node", "validate"], checkout, tmp_path / "home")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "All validation checks passed" in out, out
    # comfy-cli reports some problems only as warnings (exit 0): the registry drops that field.
    complaints = [line for line in out.splitlines() if re.search(r"warning|error|invalid", line, re.IGNORECASE)]
    assert not complaints, "comfy node validate complained:\n" + "\n".join(complaints)


def test_registry_archive_leaves_out_development_files(checkout, tmp_path):
    """`comfy node pack` (the archive `publish` uploads) honours .comfyignore and keeps what the pack needs."""
    proc = _comfy(["node", "pack"], checkout, tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    archive = checkout / "node.zip"
    names = zipfile.ZipFile(archive).namelist()
    shipped_dev = sorted(n for n in names if n.split("/")[0] in DEV_ONLY or n == "requirements-test.txt")
    assert not shipped_dev, f"development files in the registry archive: {shipped_dev[:20]}"
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md",
                   "nodes/__init__.py", "losses/__init__.py", "sampler/__init__.py", "web/icon.svg"):
        assert needed in names, f"{needed} is missing from the registry archive"
    for folder in ("locales/en/", "locales/zh-TW/", "workflows/", "web/docs/"):
        assert any(n.startswith(folder) for n in names), f"nothing under {folder} in the registry archive"
    print(f"\nregistry archive: {len(names)} files, {archive.stat().st_size / 1e6:.2f} MB")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _image_size(path: Path) -> tuple[float, float]:
    """Width and height of an SVG (its width/height attributes) or PNG (IHDR)."""
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    text = data.decode("utf-8")
    head = re.search(r"<svg\b[^>]*>", text, re.DOTALL)
    assert head, f"{path} is neither a PNG nor an SVG"
    size = [re.search(rf'\b{k}="([\d.]+)(px)?"', head.group(0)) for k in ("width", "height")]
    assert all(size), f"{path}: the <svg> element needs numeric width and height"
    return float(size[0].group(1)), float(size[1].group(1))


def test_registry_metadata_is_complete_and_consistent():
    """Fields the registry shows, read by comfy-cli's own parser; one repository URL everywhere."""
    from comfy_cli.registry.config_parser import extract_node_configuration

    config = extract_node_configuration(str(ROOT / "pyproject.toml"))
    assert config is not None
    project, comfy = config.project, config.tool_comfy
    assert project.supported_os, "no valid 'Operating System ::' classifier"
    assert project.supported_accelerators, "no valid 'Environment :: GPU ::' classifier"
    assert comfy.publisher_id and comfy.display_name and project.description
    assert project.supported_comfyui_version, "requires-comfyui is missing or malformed"

    repo = project.urls.repository
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", repo)
    assert match, f"Repository URL {repo!r} is not a GitHub repository URL"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"git clone {repo}" in readme, f"the README's install text does not clone {repo}"

    # The icon is this repository's own file, served raw from the default branch.
    raw = f"https://raw.githubusercontent.com/{match.group(1)}/{match.group(2)}/main/"
    assert comfy.icon.startswith(raw), f"Icon {comfy.icon!r} is not a file of {repo}"
    icon = ROOT / comfy.icon.removeprefix(raw)
    assert icon.is_file(), f"the Icon URL names {icon.relative_to(ROOT)}, which does not exist"
    assert icon.suffix in (".svg", ".png", ".jpg", ".gif")
    width, height = _image_size(icon)
    assert 0 < width <= 800 and 0 < height <= 400, f"icon is {width}x{height}; the registry takes at most 800x400"

    init = (ROOT / "__init__.py").read_text(encoding="utf-8")
    assert f'STYLE_GUIDANCE_VERSION = "{project.version}"' in init, "pyproject version and STYLE_GUIDANCE_VERSION differ"


# -- every third-party module that shipped code imports is declared ------------------------------


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _requirement_names(lines: list[str]) -> dict[str, str]:
    """{normalised distribution name: the requirement as written} (comments and options skipped)."""
    from packaging.requirements import Requirement

    found = {}
    for line in lines:
        line = line.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        found[_normalise(req.name)] = line
    return found


def _imports(path: Path) -> dict[str, bool]:
    """Top-level modules imported by one file: {name: optional?} (optional = guarded by except ImportError)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            found[top] = found.get(top, True) and id(node) in guarded
    return found


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def _comfyui_modules(comfy_root: Path) -> set[str]:
    """Top-level modules a ComfyUI tree provides (comfy, nodes, folder_paths, server, utils, ...)."""
    names = {p.stem for p in comfy_root.glob("*.py")}
    names |= {p.name for p in comfy_root.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    return names


def test_shipped_imports_are_declared(comfy_root):
    """Each third-party import outside tests/, benchmarks/, scripts/ is a declared dependency.

    Import names map to distributions through the installed metadata (PIL -> pillow,
    open_clip -> open_clip_torch). Required imports must be in requirements.txt and in
    pyproject's dependencies; imports guarded by ``except ImportError`` may instead be an
    optional extra. torch and torchvision stay unpinned (ComfyUI's own build must win).
    """
    own = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    comfy = _comfyui_modules(comfy_root)
    imports: dict[str, dict[str, bool]] = {}  # module -> {file: optional}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in DEV_ONLY or rel.parts[0].startswith(".") or "__pycache__" in rel.parts:
            continue
        for name, optional in _imports(path).items():
            if name in sys.stdlib_module_names or name in own or name in comfy:
                continue
            imports.setdefault(name, {})[str(rel)] = optional

    project = _pyproject()["project"]
    required_txt = _requirement_names((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    required_toml = _requirement_names(project.get("dependencies", []))
    extras = _requirement_names([r for group in project.get("optional-dependencies", {}).values() for r in group])
    dists = importlib.metadata.packages_distributions()

    problems = []
    for module, files in sorted(imports.items()):
        where = ", ".join(sorted(files))
        candidates = {_normalise(d) for d in dists.get(module, [])}
        if not candidates:
            problems.append(f"{module} (imported by {where}) is not installed here, so its distribution is unknown")
            continue
        optional = all(files.values())
        in_txt, in_toml = candidates & required_txt.keys(), candidates & required_toml.keys()
        if optional and (in_toml or candidates & extras.keys()):
            continue
        dist = sorted(candidates)[0]
        if not in_txt:
            problems.append(f"{dist} (import {module}, in {where}) is missing from requirements.txt")
        if not in_toml:
            problems.append(f"{dist} (import {module}, in {where}) is missing from pyproject.toml [project] dependencies")
    for name in ("torch", "torchvision"):
        for source, reqs in (("requirements.txt", required_txt), ("pyproject.toml", required_toml)):
            if name in reqs and reqs[name] != name:
                problems.append(f"{source} pins {reqs[name]!r}: list {name} without a version so ComfyUI's build stays")
    assert not problems, "undeclared dependencies:\n" + "\n".join(problems)
    assert "torch" in imports and "torch" in required_txt and "torch" in required_toml
