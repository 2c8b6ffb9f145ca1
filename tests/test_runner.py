"""The headless runner (``python -m headless``), end to end on a real ComfyUI, in tiny mode.

The runner sets ComfyUI up globally (settings, node loading), which must not happen twice in
this pytest process, so every run is a subprocess. Helper functions of the runner that need no
ComfyUI are checked in-process at the end.
"""

from __future__ import annotations

import csv
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
CONTENT = IMAGES / "style_guidance_content.jpg"
STYLE = IMAGES / "style_guidance_style.jpg"
TERMS = {"content_mse", "vgg_content", "zecon", "clip_style", "gram_style"}
ARTIFACTS = REPO / "test-artifacts"


def run_headless(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "headless", *map(str, args)], cwd=REPO, env=env,
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


@pytest.fixture(scope="module")
def content_folder(tmp_path_factory) -> Path:
    """Two good contents, one text file, one truncated PNG."""
    folder = tmp_path_factory.mktemp("contents")
    (folder / "a_photo.jpg").write_bytes(CONTENT.read_bytes())
    with Image.open(CONTENT) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((96, 96)).save(folder / "b_flipped.png")
    (folder / "c_notes.txt").write_text("not an image\n")
    good_png = (folder / "b_flipped.png").read_bytes()
    (folder / "d_truncated.png").write_bytes(good_png[: len(good_png) // 2])
    return folder


def test_tiny_single_pair(tmp_path):
    out = tmp_path / "out"
    proc = run_headless("style_transfer_fast", "--content", CONTENT, "--style", STYLE, "--output", out,
                        "--seed", 1234)
    log = proc.stdout
    assert proc.returncode == 0, log[-6000:]
    assert log.count("TINY MODE") >= 2, "tiny mode must be announced at the start and at the end"
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
    workflow = json.loads(text["workflow"])  # the editor graph, with the values that ran
    assert any(n["type"] == "StyleGuidanceSampler" and n["widgets_values"][0] == 1234 for n in workflow["nodes"])
    rows, doc = read_losses(out)
    assert len(rows) == 1 and rows[0]["title"] == "Loss terms of the result"
    assert_finite_terms(rows[0])
    (pair,) = doc["pairs"]
    assert pair["status"] == "ok" and set(pair["measures"][0]["terms"]) == TERMS
    assert not list(out.glob("*.partial")) and not list(out.glob(".*"))


def test_folders_skip_bad_files(tmp_path, content_folder):
    out = tmp_path / "out"
    proc = run_headless("--content", content_folder, "--style", STYLE, "--output", out)
    log = proc.stdout
    assert proc.returncode == 1, log[-6000:]
    assert "c_notes.txt" in log and "not an image" in log
    assert "d_truncated.png" in log and "corrupt" in log
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["a_photo__style_guidance_style.png", "b_flipped__style_guidance_style.png"], log[-4000:]
    rows, doc = read_losses(out)
    assert [Path(r["content"]).name for r in rows] == ["a_photo.jpg", "b_flipped.png"]
    for row in rows:
        assert_finite_terms(row)
    assert [p["status"] for p in doc["pairs"]] == ["ok", "ok"]


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
    assert "TINY MODE" not in log
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------------------------
# Server mode: the session's real ComfyUI server (conftest: its base holds stand-ins under every
# shipped workflow's file names), plus a URL where nothing listens


def test_server_mode_retries_on_live_server(tmp_path, comfy_server, content_folder):
    from headless.comfy_host import free_port

    contents = tmp_path / "contents"
    contents.mkdir()
    for name in ("a_photo.jpg", "b_flipped.png"):  # good files only: this run should exit 0
        (contents / name).write_bytes((content_folder / name).read_bytes())
    dead = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    proc = run_headless("style_transfer_fast", "--content", contents, "--style", STYLE, "--output", out,
                        "--tiny", "--seed", 5, "--server", dead, "--server", comfy_server.url)
    log = proc.stdout
    assert proc.returncode == 0, log[-6000:]
    assert f"server {dead} failed (connection refused)" in log, log[-4000:]
    assert "retrying on another server" in log
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["a_photo__style_guidance_style.png", "b_flipped__style_guidance_style.png"], log[-4000:]
    for png in out.glob("*.png"):
        text = png_text(png)
        assert {"prompt", "workflow", "style_guidance"} <= set(text)
        settings = json.loads(text["style_guidance"])
        assert settings["server"] == comfy_server.url and settings["seed"] == 5 and settings["models"] == "tiny"
    rows, doc = read_losses(out)
    assert len(rows) == 2
    for row in rows:
        assert_finite_terms(row)
    assert all(p["status"] == "ok" and p["server"] == comfy_server.url for p in doc["pairs"])
    assert any(a.startswith(dead) for p in doc["pairs"] for a in p["attempts"])


# ---------------------------------------------------------------------------------------------
# Helpers, no ComfyUI


def test_zip_pairing_reports_unmatched(tmp_path):
    from headless.runner import make_pairs

    c = [tmp_path / "c1.jpg", tmp_path / "c2.jpg", tmp_path / "c3.jpg"]
    s = [tmp_path / "s1.png", tmp_path / "s2.png"]
    pairs, problems = make_pairs(c, s, "zip")
    assert [p.name for p in pairs] == ["c1__s1", "c2__s2"]
    assert len(problems) == 1 and "c3.jpg" in problems[0]
    pairs, problems = make_pairs(c, s, "product")
    assert len(pairs) == 6 and not problems
    # Two files with one stem keep their extensions apart.
    pairs, _ = make_pairs([tmp_path / "x.jpg", tmp_path / "x.png"], s[:1], "product")
    assert [p.name for p in pairs] == ["x_jpg__s1", "x_png__s1"]


def test_measure_text_and_png_chunk(tmp_path):
    from headless.runner import add_png_text, parse_measure_text

    terms, total, weights = parse_measure_text("content_mse: 0.25 (weight 1)\nzecon: 1.5e+01 (weight 0.5)\n"
                                               "clip_style: nan (weight 1.5)\ntotal: 8.4")
    assert terms["content_mse"] == 0.25 and terms["zecon"] == 15.0 and math.isnan(terms["clip_style"])
    assert total == 8.4 and weights == {"content_mse": 1.0, "zecon": 0.5, "clip_style": 1.5}
    path = tmp_path / "x.png"
    Image.new("RGB", (4, 4), "red").save(path)
    (tmp_path / "y.png").write_bytes(add_png_text(path.read_bytes(), "style_guidance", '{"seed": 3}'))
    assert png_text(tmp_path / "y.png")["style_guidance"] == '{"seed": 3}'
