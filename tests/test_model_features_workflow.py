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


# ------------------------------------------------------------------------------------------
# The DiT twins: Flux.1 dev and Qwen-Image with their own features (issue 22, item 6)

# name -> (the model files, (folder, name), in the API twin's node order; the family's VAE file)
DIT_FILES = {
    "style_transfer_model_features_flux": (
        [("diffusion_models", "flux1-dev.safetensors"), ("text_encoders", "clip_l.safetensors"),
         ("text_encoders", "t5xxl_fp16.safetensors"), ("vae", "ae.safetensors")], "ae.safetensors"),
    "style_transfer_model_features_qwen_image": (
        [("diffusion_models", "qwen_image_fp8_e4m3fn.safetensors"),
         ("text_encoders", "qwen_2.5_vl_7b_fp8_scaled.safetensors"), ("vae", "qwen_image_vae.safetensors")],
        "qwen_image_vae.safetensors"),
}


def _dit_api(name: str) -> tuple[dict, dict]:
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    ids: dict[str, list[str]] = {}
    for k, n in api.items():
        ids.setdefault(n["class_type"], []).append(k)
    return api, ids


@pytest.mark.parametrize("name", sorted(DIT_FILES))
def test_dit_workflow_needs_only_the_model_text_encoders_and_vae(name):
    from headless.testbed.standins.names import model_files

    api, ids = _dit_api(name)
    files, vae_file = DIT_FILES[name]
    assert sorted((folder, file) for _n, _i, file, folder in model_files(api)) == sorted(files)
    kinds = set(ids)
    assert not kinds & {"StyleGuidanceVGGLoader", "StyleGuidanceOpenCLIPLoader", "CLIPVisionLoader",
                        "CheckpointLoaderSimple"}
    assert {"StyleGuidanceModelZeCon", "StyleGuidanceAttentionDistillation", "StyleGuidanceInvert"} <= kinds
    (vae,) = ids["VAELoader"]  # one VAE, the family's own: no tiny decoder (taef1, lighttaew2_1) for guidance
    assert api[vae]["inputs"]["vae_name"] == vae_file
    guider = api[ids["StyleGuidanceGuider"][0]]["inputs"]
    assert guider["vae"] == [vae, 0] and guider["mode"] == "x0"
    assert all(api[k]["inputs"]["vae"] == [vae, 0] for k in ids["VAEEncode"] + ids["VAEDecode"])
    # the DiT presets docs/model_features.md recommends: ZeCon on the first third, AD on the last
    zecon = api[ids["StyleGuidanceModelZeCon"][0]]["inputs"]["layers"]
    attention = api[ids["StyleGuidanceAttentionDistillation"][0]]["inputs"]["layers"]
    assert zecon.startswith("early blocks (DiT") and attention.startswith("late blocks (DiT"), (zecon, attention)
    note = json.loads((WORKFLOWS / f"{name}.json").read_text())["nodes"][0]["widgets_values"][0]
    for _folder, file in files:
        assert file in note
    assert "GB" in note and "Cost per guided step" in note  # memory and cost are stated


@pytest.mark.parametrize("name", sorted(DIT_FILES))
def test_dit_workflow_samples_from_the_inversion_with_the_family_settings(name):
    api, ids = _dit_api(name)
    (custom,) = ids["SamplerCustomAdvanced"]
    (inv,) = ids["StyleGuidanceInvert"]
    (guider,) = ids["StyleGuidanceGuider"]
    sampler = api[custom]["inputs"]
    assert sampler["noise"] == [inv, 0] and sampler["sigmas"] == [inv, 2] and sampler["guider"] == [guider, 0]
    g, i = api[guider]["inputs"], api[inv]["inputs"]
    assert i["model"] == g["model"] and i["positive"] == g["positive"]  # same model and schedule inverted
    assert (i["steps"], i["scheduler"]) == (20, "simple")
    measure = api[ids["StyleGuidanceMeasure"][0]]["inputs"]
    assert (measure["model"], measure["positive"]) == (g["model"], g["positive"])
    assert measure["latent"] == [custom, 0]
    if name.endswith("_flux"):  # guidance-distilled: cfg 1, the prompt's strength from FluxGuidance
        assert g["cfg"] == 1.0 and api[g["positive"][0]]["class_type"] == "FluxGuidance"
        assert api[g["positive"][0]]["inputs"]["guidance"] == 3.5
        assert g["model"][0] == ids["UNETLoader"][0]
    else:  # Qwen-Image: its template's shift and cfg
        shift = api[g["model"][0]]
        assert shift["class_type"] == "ModelSamplingAuraFlow" and shift["inputs"]["shift"] == 3.1
        assert g["cfg"] == 2.5 and i["cfg"] == 1.0
