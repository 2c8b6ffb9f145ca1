"""The checkpoint-only workflow (model-feature losses, inversion start) needs nothing but the checkpoint.

Editor file and API twin, validation and the tiny run are covered with every shipped workflow in
test_workflows.py; here: what makes this one different.
"""

from __future__ import annotations

import json

import pytest

from headless.testbed.base import REPO_ROOT

pytestmark = pytest.mark.compat  # also run against the newer ComfyUI tree (.ci/run)

NAME = "style_transfer_model_features"
WORKFLOWS = REPO_ROOT / "workflows"


def _api() -> dict:
    return json.loads((WORKFLOWS / "api" / f"{NAME}.json").read_text())


def test_needs_only_the_checkpoint():
    from headless.testbed.standins.names import model_files

    files = model_files(_api())
    assert [(folder, name) for _n, _i, name, folder in files] == [("checkpoints", "v1-5-pruned-emaonly.safetensors")]
    kinds = {n["class_type"] for n in _api().values()}
    assert not kinds & {"StyleGuidanceVGGLoader", "StyleGuidanceOpenCLIPLoader", "CLIPVisionLoader", "VAELoader"}
    assert {"StyleGuidanceModelZeCon", "StyleGuidanceAttentionDistillation", "StyleGuidanceInvert"} <= kinds
    note = json.loads((WORKFLOWS / f"{NAME}.json").read_text())["nodes"][0]["widgets_values"][0]
    assert "v1-5-pruned-emaonly.safetensors" in note


def test_sampling_starts_from_the_inversion():
    """The sampler takes the inverted noise and the inversion's sigmas (no fresh noise, same schedule)."""
    api = _api()
    ids = {n["class_type"]: k for k, n in api.items()}
    sampler = api[ids["SamplerCustomAdvanced"]]["inputs"]
    assert sampler["noise"] == [ids["StyleGuidanceInvert"], 0]
    assert sampler["sigmas"] == [ids["StyleGuidanceInvert"], 2]
    measure = api[ids["StyleGuidanceMeasure"]]["inputs"]
    assert measure["model"][0] == ids["CheckpointLoaderSimple"] and measure["latent"][0] == ids["SamplerCustomAdvanced"]
