"""The SD3.5, Flux and ControlNet workflows through the headless runner, on tiny stand-ins.

Each run is a subprocess (the runner sets ComfyUI up globally). Tiny mode writes stand-ins under
the workflow's own file names (headless.testbed.standins.install.install_for_workflow, which asks
headless.testbed.standins for these families) and applies the tiny overrides, e.g. Flux's
DualCLIPLoader on CLIP-L alone (ComfyUI cannot build a small T5-XXL).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "workflows" / "images"


@pytest.mark.slow
@pytest.mark.parametrize("workflow", ["style_transfer_sd35", "style_transfer_flux", "style_transfer_controlnet"])
def test_runner_runs_the_family_workflow_on_stand_ins(tmp_path, workflow):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "headless", workflow, "--content", str(IMAGES / "style_guidance_content.jpg"),
         "--style", str(IMAGES / "style_guidance_style.jpg"), "--output", str(out), "--tiny", "--seed", "5"],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    pngs = sorted(p for p in out.glob("*.png") if not p.name.endswith(".steps.png"))
    assert len(pngs) == 1, proc.stdout[-2000:]  # the result only (ControlNet's canny preview is not a result)
    with Image.open(pngs[0]) as im:
        assert im.size == (128, 128)
        assert json.loads(im.text["style_guidance"])["models"] == "tiny"
    report = json.loads((out / "losses.json").read_text())
    assert "TINY MODE" in proc.stdout
    assert report["models"] == "tiny" and report["seed"] == 5
    (pair,) = report["pairs"]
    assert pair["status"] == "ok", pair
    terms = {t["name"]: t["value"] for t in pair["measures"][0]["terms"]}
    assert set(terms) == {"content_mse", "vgg_content", "zecon", "clip_style", "gram_style"}
    assert all(math.isfinite(v) for v in terms.values()), terms
