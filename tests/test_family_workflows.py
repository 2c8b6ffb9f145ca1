"""Every shipped workflow through the headless runner, on tiny stand-ins (in both ComfyUI trees).

Each run is a subprocess (the runner sets ComfyUI up globally). Tiny mode writes stand-ins under
the workflow's own file names (headless.testbed.standins.install.install_for_workflow, which asks
headless.testbed.standins for these families) and applies the tiny overrides, e.g. Flux's
DualCLIPLoader on CLIP-L alone (ComfyUI cannot build a small T5-XXL), Qwen-Image's, Z-Image's and
Flux.2's text encoders replaced by seeded conditioning (headless.testbed.standins.tiny_text), and
Z-Image's and Flux.2's diffusion models (and Flux.2's VAE) loaded by the test loaders of their tiny
stand-ins (headless.testbed.standins.tiny_dit). The in-process run of each
workflow (tests/test_workflows.py) checks the graphs; this checks what a user types.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from headless.testbed.standins.names import DIT_UNETS, NARROW_VAES
from headless.testbed.standins.tiny_text import fixed_text_encoder

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "workflows" / "images"
# The picture workflows (a video workflow's runner test, on the shipped clip, is in test_runner.py).
WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json")
                   if '"LoadVideo"' not in (REPO / "workflows" / "api" / p.name).read_text())
# Loss node -> the term it adds (what Measure names it).
TERM_OF = {"StyleGuidanceContentMSE": "pixel_mse_content", "StyleGuidanceVGGContent": "vgg_content",
           "StyleGuidanceZeCon": "vgg_patchnce_content", "StyleGuidanceCLIPStyle": "clip_style", "StyleGuidanceGramStyle": "gram_style",
           "StyleGuidanceModelZeCon": "zecon_content", "StyleGuidanceAttentionDistillation": "attention_distillation_style"}

pytestmark = [pytest.mark.slow, pytest.mark.compat]


def _api(workflow: str) -> dict:
    return json.loads((REPO / "workflows" / "api" / f"{workflow}.json").read_text())


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_runner_runs_the_workflow_on_stand_ins(tmp_path, workflow):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "headless", workflow, "--content", str(IMAGES / "style_guidance_content.jpg"),
         "--style", str(IMAGES / "style_guidance_style.jpg"), "--output", str(out), "--tiny", "--seed", "5"],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "TINY MODE" in proc.stdout
    api = _api(workflow)
    for nid, node in api.items():  # text encoders that cannot shrink: the banner says what replaced them
        if fixed_text_encoder(node):
            assert f"Replaced: text encoder {node['inputs']['clip_name']}" in proc.stdout, proc.stdout[-3000:]
        inputs = node["inputs"]  # loaders of tiny DiTs and narrow VAEs: the test loader that took their file
        if node["class_type"] == "UNETLoader" and inputs["unet_name"] in DIT_UNETS:
            assert (f"Replaced: UNETLoader node {nid} ({inputs['unet_name']}) loaded by SGTestDiTLoader"
                    in proc.stdout), proc.stdout[-3000:]
        if node["class_type"] == "VAELoader" and inputs["vae_name"] in NARROW_VAES:
            assert (f"Replaced: VAELoader node {nid} ({inputs['vae_name']}) loaded by SGTestKLVAE"
                    in proc.stdout), proc.stdout[-3000:]
    pngs = sorted(p for p in out.glob("*.png") if not p.name.endswith(".steps.png"))
    assert pngs, proc.stdout[-2000:]  # ControlNet's canny preview is not a result; the grid is one or more
    for png in pngs:
        with Image.open(png) as im:
            assert json.loads(im.text["style_guidance"])["models"] == "tiny"
    report = json.loads((out / "losses.json").read_text())
    has_seed = any(("sampler" in n["class_type"].lower() and "seed" in n["inputs"]) or "noise_seed" in n["inputs"]
                   for n in api.values())
    assert report["models"] == "tiny"
    if has_seed:
        assert report["seed"] == 5, report["seed"]
    else:  # e.g. sampling from the inversion's noise: the runner says --seed had nothing to set
        assert report["seed"] is None and "--seed given but the workflow has no sampler seed" in proc.stdout
    (pair,) = report["pairs"]
    assert pair["status"] == "ok", pair
    assert pair["measures"], pair
    for measure in pair["measures"]:
        terms = {t["name"]: t["value"] for t in measure["terms"]}
        assert terms and all(math.isfinite(v) for v in terms.values()), terms
    names = {t["name"] for m in pair["measures"] for t in m["terms"]}
    made = Counter(TERM_OF[n["class_type"]] for n in api.values() if n["class_type"] in TERM_OF)
    # a second node of one kind in a chain is reported as "<term>#2" (e.g. one Gram per region)
    assert {n.split("#")[0] for n in names} == set(made), names
    for n in names:
        base, _, k = n.partition("#")
        assert not k or int(k) <= made[base], (n, made)


def test_server_mode_runs_qwen_image_with_its_text_encoder_replaced(tmp_path, comfy_server):
    """--tiny --server: the prompt reaches a real ComfyUI server with SGTestConditioning for Qwen2.5-VL 7B."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "headless", "style_transfer_qwen_image", "--content",
         str(IMAGES / "style_guidance_content.jpg"), "--style", str(IMAGES / "style_guidance_style.jpg"),
         "--output", str(out), "--tiny", "--server", comfy_server.url],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Replaced: text encoder qwen_2.5_vl_7b_fp8_scaled.safetensors" in proc.stdout, proc.stdout[-3000:]
    (pair,) = json.loads((out / "losses.json").read_text())["pairs"]
    assert pair["status"] == "ok" and pair["server"] == comfy_server.url, pair
    terms = {t["name"]: t["value"] for m in pair["measures"] for t in m["terms"]}
    assert len(terms) == 5 and all(math.isfinite(v) for v in terms.values()), terms
