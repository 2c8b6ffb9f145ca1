"""Weights are read without running code; the optional VGG download is checked and fails clearly.

- Shipped code reads weights only with safetensors, ``torch.load(weights_only=True)`` or
  ComfyUI's ``load_torch_file(safe_load=True)``, and never calls eval/exec/pickle (a scan of
  the source with ``ast``).
- A .pth holding a pickled object (a whole ``nn.Module``, a dict with a custom class) is
  refused by the VGG loader node, with a message that says why, and its code never runs.
- ``allow_download``: torchvision's published hash is checked before the file is used (a local
  loopback server hands out a wrong file), and without network the error names the file, the
  folder and the URL (the URL points at a closed loopback port). No real network is used.
"""

from __future__ import annotations

import ast
import functools
import http.server
import sys
import threading
from pathlib import Path

import pytest
import torch

from headless.testbed.base import REPO_ROOT
from headless.testbed.inprocess import PromptFailed

SKIP_DIRS = {"tests", "test-artifacts", "node_modules", "__pycache__"}
CANARY = Path(__file__).resolve().parents[1] / "test-artifacts" / "pickle-canary"


def _shipped_python() -> list[Path]:
    out = []
    for path in REPO_ROOT.rglob("*.py"):
        rel = path.relative_to(REPO_ROOT).parts
        if any(p.startswith(".") or p in SKIP_DIRS for p in rel[:-1]):
            continue
        out.append(path)
    return out


def _unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each call that could run code from data."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        kw = {k.arg: k.value for k in node.keywords}
        true = {k for k, v in kw.items() if isinstance(v, ast.Constant) and v.value is True}

        if isinstance(f, ast.Name) and name in ("eval", "exec"):
            found.append((node.lineno, f"{name}()"))
        elif owner in ("pickle", "dill", "marshal", "cloudpickle") and name in ("load", "loads", "Unpickler"):
            found.append((node.lineno, f"{owner}.{name}()"))
        elif owner == "torch" and name == "load" and "weights_only" not in true:
            found.append((node.lineno, "torch.load() without weights_only=True"))
        elif name == "load_torch_file" and "safe_load" not in true:
            found.append((node.lineno, "load_torch_file() without safe_load=True"))
        elif owner == "yaml" and name == "load":
            found.append((node.lineno, "yaml.load() (use yaml.safe_load)"))
    return found


def test_shipped_code_reads_weights_safely_and_never_evaluates_code():
    files = _shipped_python()
    assert len(files) > 30 and any(p.name == "vgg.py" for p in files)
    bad = [f"{p.relative_to(REPO_ROOT)}:{line}: {what}" for p in files
           for line, what in _unsafe_calls(ast.parse(p.read_text(), str(p)))]
    assert not bad, "unsafe loading in shipped code:\n" + "\n".join(bad)


def test_the_scan_finds_what_it_looks_for():
    """The counterfactual: each pattern the scan refuses is found in a sample."""
    sample = ("torch.load(p)\ntorch.load(p, weights_only=False)\ntorch.load(p, weights_only=True)\n"
              "eval('1')\nexec('x')\nm.eval()\npickle.load(f)\npickle.loads(b)\n"
              "comfy.utils.load_torch_file(p)\ncomfy.utils.load_torch_file(p, safe_load=True)\nyaml.load(s)\n")
    lines = [line for line, _ in _unsafe_calls(ast.parse(sample))]
    assert lines == [1, 2, 4, 5, 7, 8, 9, 11], lines


def leave_canary(path: str) -> None:
    Path(path).write_text("unpickled")


class Canary:
    """A pickled object whose unpickling would call leave_canary (a file left behind: code ran)."""

    def __reduce__(self):
        return (leave_canary, (str(CANARY),))


def _vgg_graph(vgg_name: str, allow_download: bool | None = None) -> dict:
    loader = {"vgg_name": vgg_name, **({} if allow_download is None else {"allow_download": allow_download})}
    return {
        "img": {"class_type": "SGTestImage", "inputs": {"width": 32, "height": 32, "seed": 0, "batch_size": 1}},
        "vgg": {"class_type": "StyleGuidanceVGGLoader", "inputs": loader},
        "gram": {"class_type": "StyleGuidanceGramStyle", "inputs": {
            "style": ["img", 0], "vgg": ["vgg", 0], "weight": 1.0, "layers": "relu1_1..relu5_1 (Gatys)"}},
        "m": {"class_type": "StyleGuidanceMeasure", "inputs": {"image": ["img", 0], "losses": ["gram", 0], "seed": 0}},
    }


@pytest.mark.parametrize("kind", ["module", "object"])
def test_pickled_pth_is_refused_by_the_vgg_loader_saying_why(comfy, comfy_base, tiny_models, kind):
    CANARY.parent.mkdir(exist_ok=True)
    CANARY.unlink(missing_ok=True)
    name = f"sg_pickled_{kind}.pth"
    path = comfy_base / "models" / "vgg" / name
    if kind == "module":
        torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3)), path)
    else:
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "note": Canary()}, path)
    with pytest.raises(PromptFailed) as err:
        comfy.run(_vgg_graph(name))
    text = str(err.value)
    assert name in text and "pickled Python objects" in text and "safetensors" in text, text
    assert ("torch.nn" in text) if kind == "module" else ("leave_canary" in text), text
    assert not CANARY.exists(), "unpickling ran the file's code"


def _loaders(pack):
    return sys.modules[pack.__name__ + ".nodes.loaders"]


def test_vgg_download_without_network_names_file_folder_and_url(comfy, comfy_base, pack, monkeypatch):
    loaders = _loaders(pack)
    monkeypatch.setattr(loaders, "VGG_FILE", "sg-missing-vgg19.pth")
    monkeypatch.setattr(loaders, "VGG_URL", "http://127.0.0.1:9/vgg19-dcbee923.pth")  # closed port: refused
    with pytest.raises(PromptFailed) as err:
        comfy.run(_vgg_graph("sg-missing-vgg19.pth", allow_download=True))
    text = str(err.value)
    folder = str(comfy_base / "models" / "vgg")
    assert "sg-missing-vgg19.pth" in text and "http://127.0.0.1:9/vgg19-dcbee923.pth" in text, text
    assert folder in text.replace("\\\\", "\\") and "URLError" in text, text
    assert not (comfy_base / "models" / "vgg" / "sg-missing-vgg19.pth").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server(tmp_path):
    """A loopback HTTP server over ``tmp_path`` (no real network)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_vgg_download_is_checked_against_the_published_hash(comfy, comfy_base, tiny_models, pack, monkeypatch,
                                                            file_server):
    import hashlib

    from safetensors.torch import load_file

    served, url = file_server
    loaders = _loaders(pack)
    vgg_dir = comfy_base / "models" / "vgg"
    # A real VGG19 weights file (the tiny random one, saved as torchvision does), served locally.
    sd = {f"features.{k}": v for k, v in load_file(str(vgg_dir / tiny_models["vgg"])).items()}
    torch.save(sd, served / "vgg19.pth")
    digest = hashlib.sha256((served / "vgg19.pth").read_bytes()).hexdigest()
    monkeypatch.setattr(loaders, "VGG_URL", f"{url}/vgg19.pth")

    # Wrong hash (the published prefix against this file): refused, nothing kept.
    monkeypatch.setattr(loaders, "VGG_FILE", "sg-download-a.pth")
    assert not digest.startswith(loaders.VGG_SHA256_PREFIX)
    with pytest.raises(PromptFailed) as err:
        comfy.run(_vgg_graph("sg-download-a.pth", allow_download=True))
    text = str(err.value)
    assert "sha256" in text and "dcbee923" in text and "discarded" in text, text
    assert not any(p.name.startswith("sg-download-a") for p in vgg_dir.iterdir())

    # The file's own hash prefix: downloaded, kept under its name, used.
    monkeypatch.setattr(loaders, "VGG_FILE", "sg-download-b.pth")
    monkeypatch.setattr(loaders, "VGG_SHA256_PREFIX", digest[:8])
    comfy.run(_vgg_graph("sg-download-b.pth", allow_download=True))
    assert (vgg_dir / "sg-download-b.pth").read_bytes() == (served / "vgg19.pth").read_bytes()
    assert comfy.output("m", 2) > 0  # the Gram term was measured with the downloaded network
