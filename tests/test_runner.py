"""The headless runner (``python -m headless``), end to end on a real ComfyUI, in tiny mode.

The runner sets ComfyUI up globally (settings, node loading), which must not happen twice in
this pytest process, so every run is a subprocess. Its parts are checked one by one in
tests/test_runner_parts.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_inputs import make_hostile_folder
from PIL import Image

from headless.protocol import MEASURE_VERSION

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "workflows" / "images"
CONTENT = IMAGES / "style_guidance_content.jpg"
STYLE = IMAGES / "style_guidance_style.jpg"
TERMS = {"pixel_mse_content", "vgg_content", "vgg_patchnce_content", "clip_style", "gram_style"}
ARTIFACTS = REPO / "test-artifacts"


def _env(tmpdir: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


def run_headless(*args: str, timeout: float = 600, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "headless", *map(str, args)], cwd=REPO, env=_env(tmpdir),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "runner-last.log").write_text(proc.stdout)
    return proc


def png_text(path: Path) -> dict:
    with Image.open(path) as im:
        im.load()
        return dict(im.text)


def read_losses(out: Path) -> tuple[list[dict], dict]:
    with open(out / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((out / "losses.json").read_text())


def assert_finite_terms(row: dict) -> None:
    assert TERMS <= set(row), row
    for key in [*TERMS, "total"]:
        assert math.isfinite(float(row[key])), (key, row)
    for term in TERMS:  # the weight/share columns exist; filled once the Measure node reports them
        assert f"{term}.weight" in row and f"{term}.share" in row


def result_pngs(out: Path) -> list[str]:
    """The result images in ``out`` (not the per-step plots)."""
    return sorted(p.name for p in out.glob("*.png") if not p.name.endswith(".steps.png"))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("sg_runner_"))


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """One tiny run of the default workflow on the sample pair (shared by the tests below)."""
    out = tmp_path_factory.mktemp("single") / "out"
    tmpdir = tmp_path_factory.mktemp("single_tmp")
    proc = run_headless("style_transfer_fast", "--content", CONTENT, "--style", STYLE, "--output", out,
                        "--seed", 1234, tmpdir=tmpdir)
    return proc, out, tmpdir


@pytest.mark.slow
def test_tiny_single_pair(single):
    proc, out, tmpdir = single
    log = proc.stdout
    assert proc.returncode == 0, log[-6000:]
    assert log.count("TINY MODE") >= 2, "tiny mode must be announced at the start and at the end"
    # Quiet: ComfyUI's start-up log (import tracebacks of audio nodes, 'Total VRAM', ...) stays hidden.
    for noise in ("Traceback", "torchaudio", "IMPORT FAILED", "Total VRAM", "ComfyUI's log"):
        assert noise not in log, (noise, log[:3000])
    assert log.splitlines()[0].startswith("workflow: style_transfer_fast")
    png = out / "style_guidance_content__style_guidance_style.png"
    assert png.is_file(), log[-4000:]
    text = png_text(png)
    assert {"prompt", "workflow", "style_guidance"} <= set(text)
    settings = json.loads(text["style_guidance"])
    assert settings["seed"] == 1234 and settings["models"] == "tiny" and settings["workflow"] == "style_transfer_fast"
    assert settings["content"] == str(CONTENT) and settings["style"] == str(STYLE) and settings["server"] is None
    prompt = json.loads(text["prompt"])
    sampler = next(n for n in prompt.values() if n["class_type"] == "StyleGuidanceSampler")
    assert sampler["inputs"]["seed"] == 1234
    assert not any(k.startswith("sg_runner_json_") for k in prompt)  # in-process: no extra nodes
    workflow = json.loads(text["workflow"])  # the editor graph, with the values that ran
    assert any(n["type"] == "StyleGuidanceSampler" and n["widgets_values"][0] == 1234 for n in workflow["nodes"])
    rows, doc = read_losses(out)
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["name"] == png.stem
    assert_finite_terms(rows[0])
    (pair,) = doc["pairs"]
    api = json.loads((REPO / "workflows" / "api" / "style_transfer_fast.json").read_text())
    (measure_id,) = [k for k, n in api.items() if n["class_type"] == "StyleGuidanceMeasure"]
    assert pair["status"] == "ok" and doc["measure_nodes"] == {measure_id: "Loss terms of the result"}
    (measure,) = pair["measures"]
    assert {t["name"] for t in measure["terms"]} == TERMS and measure["version"] == MEASURE_VERSION
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.name.endswith(".partial")]
    assert leftovers(tmpdir) == []  # the temporary ComfyUI base is gone


@pytest.mark.slow
def test_step_events_are_written_and_plotted(single):
    """Needs the guidance engine's ``style_guidance.step`` events; skipped while it sends none."""
    proc, out, _ = single
    assert proc.returncode == 0, proc.stdout[-4000:]
    steps = out / "style_guidance_content__style_guidance_style.steps.json"
    if not steps.exists():
        pytest.skip("the guidance engine sent no style_guidance.step events (nothing to plot yet)")
    events = json.loads(steps.read_text())["events"]
    assert events and all({"step", "fraction", "sigma", "total", "terms"} <= set(e) for e in events)
    assert {name for e in events for name in e["terms"]} == TERMS
    assert sorted({e["step"] for e in events}) == list(range(len({e["step"] for e in events})))
    with Image.open(steps.with_suffix("").with_suffix(".steps.png")) as im:
        assert im.size[0] > 400
    (pair,) = json.loads((out / "losses.json").read_text())["pairs"]
    assert pair["steps"] == len(events)


@pytest.mark.slow
@pytest.mark.compat
def test_tiny_video_workflow_writes_the_saved_video(tmp_path):
    """style_transfer_wan on the shipped clip: the MP4 that SaveVideo wrote is copied out (5 frames: tiny mode
    keeps 1 + 4, at 64 px), with every term measured on the clip (Temporal Consistency too) and the step events."""
    import av

    out = tmp_path / "out"
    clip = IMAGES / "style_guidance_content_clip.mp4"
    start = time.perf_counter()
    proc = run_headless("style_transfer_wan", "--content", clip, "--style", STYLE, "--output", out, tmpdir=tmp_path)
    print(f"style_transfer_wan tiny run: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-6000:]
    stem = "style_guidance_content_clip__style_guidance_style"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}.mp4", f"{stem}.steps.json", f"{stem}.steps.png", "losses.csv", "losses.json"]), proc.stdout[-3000:]
    with av.open(str(out / f"{stem}.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert "prompt" in container.metadata  # SaveVideo's own metadata, kept
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3), (len(frames), frames[0].shape)
    (pair,) = json.loads((out / "losses.json").read_text())["pairs"]
    assert pair["status"] == "ok" and pair["outputs"][0] == str(out / f"{stem}.mp4"), pair
    (measure,) = pair["measures"]
    terms = {t["name"]: t["value"] for t in measure["terms"]}
    assert set(terms) == {"pixel_mse_content", "vgg_content", "temporal_consistency", "clip_style", "gram_style"}
    assert all(math.isfinite(v) for v in terms.values()), terms
    assert pair["steps"] >= 1
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_hostile_input_folder(tmp_path):
    """Awkward images all run; unusable files are named with the reason; exit 1; --verbose shows ComfyUI's log."""
    folder = tmp_path / "in"
    expect = make_hostile_folder(folder, CONTENT)
    out = tmp_path / "out"
    proc = run_headless("--content", folder, "--style", STYLE, "--output", out, "--verbose", tmpdir=tmp_path)
    log = proc.stdout
    assert proc.returncode == 1, log[-6000:]
    for name, why in expect.items():
        if why != "ok":
            assert any(f"/{name}:" in line and why in line for line in log.splitlines()), (name, log[-5000:])
    assert "sub-folder" in log and "anim.gif has 3 frames" in log
    written = result_pngs(out)
    assert written == sorted(["anim__style_guidance_style.png", "cmyk__style_guidance_style.png",
                              "my photo é ☕ a..b__style_guidance_style.png", "palette__style_guidance_style.png"]), log
    rows, doc = read_losses(out)
    assert [r["status"] for r in rows] == ["ok"] * 4
    for row in rows:
        assert_finite_terms(row)
    assert "Import times for custom nodes" in log  # --verbose: ComfyUI's own log is shown
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_real_mode_lists_missing_models(tmp_path):
    out = tmp_path / "out"
    models = tmp_path / "empty_models"
    models.mkdir()
    proc = run_headless("style_transfer_fast", "--content", CONTENT, "--style", STYLE, "--output", out,
                        "--real", "--models", models)
    log = proc.stdout
    assert proc.returncode == 2, log[-6000:]
    expected = {
        "v1-5-pruned-emaonly.safetensors": models / "checkpoints",
        "vgg19-dcbee923.pth": models / "vgg",
        "open_clip_vit_b_32_laion2b_s34b_b79k.safetensors": models / "open_clip",
        "taesd_decoder.safetensors": models / "vae_approx",
    }
    for name, folder in expected.items():
        line = next((ln for ln in log.splitlines() if name in ln), None)
        assert line is not None and str(folder) in line, (name, log[-4000:])
    assert "TINY MODE" not in log and "Traceback" not in log
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------------------------
# Signals


def _start(args: list, tmpdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "headless", *map(str, args)], cwd=REPO, env=_env(tmpdir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(proc: subprocess.Popen, predicate, lines: list[str], timeout: float = 500) -> bool:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if predicate(line):
            return True
        if time.monotonic() > deadline:
            break
    return False


@pytest.mark.slow
def test_sigint_stops_the_pair_in_flight(tmp_path):
    """SIGINT while the second pair samples: it stops there, exit 130, the first is kept and listed."""
    contents = tmp_path / "contents"
    contents.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (contents / name).write_bytes(CONTENT.read_bytes())
    out = tmp_path / "out"
    proc = _start(["--content", contents, "--style", STYLE, "--output", out], tmp_path)
    lines: list[str] = []
    try:
        sampling = _read_until(proc, lambda ln: "b__style_guidance_style: node" in ln and "step 1/" in ln, lines)
        assert sampling, "".join(lines)[-5000:]
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        rest, _ = proc.communicate(timeout=120)
        latency = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + rest
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "runner-sigint.log").write_text(log + f"\n[test] SIGINT -> exit: {latency:.2f} s\n")
    assert proc.returncode == 130, log[-5000:]
    assert latency < 20, f"exit {latency:.1f} s after SIGINT"
    assert result_pngs(out) == ["a__style_guidance_style.png"]  # nothing of the interrupted pair
    assert not [p for p in out.iterdir() if p.name.startswith((".", "b__")) or "partial" in p.name]
    assert "a__style_guidance_style  ok" in log and "b__style_guidance_style  interrupted" in log
    _, doc = read_losses(out)
    assert [p["status"] for p in doc["pairs"]] == ["ok", "interrupted"]
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigterm_during_start_up_leaves_nothing_behind(tmp_path):
    proc = _start(["--content", CONTENT, "--style", STYLE, "--output", tmp_path / "out"], tmp_path)
    lines: list[str] = []
    try:
        assert _read_until(proc, lambda ln: ln.startswith("ComfyUI:"), lines), "".join(lines)
        time.sleep(1.0)  # inside ComfyUI's start-up
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rest, _ = proc.communicate(timeout=60)
        latency = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, "".join(lines) + rest
    assert latency < 15, latency
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Two processes filling one stand-in cache at once

BUILD_SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
sys.path.append({repo!r})
from headless.testbed import base as hc
from headless.locate import locate_comfyui
base = Path(sys.argv[1]); hc.make_base(base, standin_nodes=False)
hc.configure_comfy(locate_comfyui(), base)
from headless.testbed.standins import install as tm
ready = Path(sys.argv[3]); (ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:  # both processes build at the same moment
    time.sleep(0.05)
print(tm.install_for_workflow(Path(sys.argv[2]), json.loads(sys.argv[4])))
"""

# Every kind of stand-in except the checkpoint (the same write path, ten times the build time).
BUILD_PROMPT = {
    "1": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
    "2": {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": "vgg19-dcbee923.pth"}},
    "3": {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": "sub/vgg.safetensors"}},
    "4": {"class_type": "StyleGuidanceOpenCLIPLoader", "inputs": {"clip_name": "oc.safetensors", "arch": "x"}},
    "5": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "l.safetensors"}},
}


def test_two_processes_build_the_stand_ins_at_once(tmp_path):
    import torch
    from safetensors.torch import load_file

    from headless.testbed.standins.loss_nets import tiny_open_clip_config

    models, ready = tmp_path / "models", tmp_path / "ready"
    ready.mkdir()
    env = {**_env(), "STYLE_GUIDANCE_CACHE": str(tmp_path / "cache")}
    script = BUILD_SCRIPT.format(repo=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"base{i}"), str(models), str(ready),
                               json.dumps(BUILD_PROMPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    files = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file()) + \
        sorted(p for p in models.rglob("*") if p.is_file() or p.is_symlink())
    assert not [p for p in files if "partial" in p.name], files
    for p in files:  # every file whole: each loads
        if p.suffix == ".safetensors":
            load_file(str(p))
        elif p.suffix == ".pth":
            torch.load(p, weights_only=True)
        elif p.suffix == ".json":
            assert json.loads(p.read_text()) == tiny_open_clip_config()
    for rel in ("vae_approx/taesd_encoder.safetensors", "vae_approx/taesd_decoder.safetensors",
                "vgg/vgg19-dcbee923.pth", "vgg/sub/vgg.safetensors", "open_clip/oc.safetensors",
                "open_clip/oc.safetensors.json", "loras/l.safetensors"):
        assert (models / rel).is_file(), rel


def test_stand_ins_never_leave_the_models_folder_or_replace_a_config(tmp_path, monkeypatch):
    from headless.testbed.standins import install as tm

    monkeypatch.setenv("STYLE_GUIDANCE_CACHE", str(tmp_path / "cache"))
    models = tmp_path / "models"
    for name in ("../escape.safetensors", str(tmp_path / "abs.safetensors"), "a/../../b.safetensors"):
        prompt = {"1": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "ok.safetensors"}},
                  "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": name}}}
        with pytest.raises(ValueError, match="outside the models folder"):
            tm.install_for_workflow(models, prompt)
        assert not models.exists() and not (tmp_path / "escape.safetensors").exists()  # nothing at all written
    (models / "open_clip").mkdir(parents=True)
    mine = models / "open_clip" / "mine.safetensors.json"
    mine.write_text('{"my": "config"}')
    prompt = {"1": {"class_type": "StyleGuidanceOpenCLIPLoader", "inputs": {"clip_name": "mine.safetensors"}}}
    with pytest.raises(FileExistsError, match="mine.safetensors.json"):
        tm.install_for_workflow(models, prompt)
    assert mine.read_text() == '{"my": "config"}' and not (models / "open_clip" / "mine.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# Server mode: the session's real ComfyUI server (conftest: its base holds stand-ins under every
# shipped workflow's file names), plus a URL where nothing listens


@pytest.mark.slow
def test_server_mode_retries_on_live_server(tmp_path, comfy_server):
    from headless.testbed.server import free_port

    contents = tmp_path / "contents"
    contents.mkdir()
    (contents / "a_photo.jpg").write_bytes(CONTENT.read_bytes())
    with Image.open(CONTENT) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((96, 96)).save(contents / "b_flipped.png")
    dead = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    proc = run_headless("style_transfer_fast", "--content", contents, "--style", STYLE, "--output", out,
                        "--tiny", "--seed", 5, "--server", dead, "--server", comfy_server.url)
    log = proc.stdout
    assert proc.returncode == 0, log[-6000:]
    assert f"server {dead} failed (connection refused)" in log, log[-4000:]
    assert "retrying on another server" in log
    written = result_pngs(out)
    assert written == ["a_photo__style_guidance_style.png", "b_flipped__style_guidance_style.png"], log[-4000:]
    for name in written:
        text = png_text(out / name)
        assert {"prompt", "workflow", "style_guidance"} <= set(text)
        settings = json.loads(text["style_guidance"])
        assert settings["server"] == comfy_server.url and settings["seed"] == 5 and settings["models"] == "tiny"
    rows, doc = read_losses(out)
    assert len(rows) == 2
    for row in rows:  # the Measure node's JSON reached /history (its ui payload, or the runner's tap)
        assert_finite_terms(row)
    assert all(p["status"] == "ok" and p["server"] == comfy_server.url for p in doc["pairs"])
    assert any(a.startswith(dead) for p in doc["pairs"] for a in p["attempts"])
