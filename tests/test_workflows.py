"""The shipped workflows: current API twins, notes, validation and a real run of each."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import pytest

from headless.testbed.base import REPO_ROOT
from headless.workflow import UIGraph, WorkflowError, defs_in_process, ui_to_api

# Every test is also run against the newer ComfyUI tree (.ci/run), except the video workflow's in-process run
# there: the runner's video test (test_runner.py) runs that workflow in both trees.

WORKFLOWS = REPO_ROOT / "workflows"
EXPECTED = {"style_transfer_sd15", "style_transfer_fast", "style_transfer_sdxl", "style_transfer_sd35",
            "style_transfer_flux", "style_transfer_qwen_image", "style_transfer_z_image_turbo", "style_transfer_flux2",
            "style_transfer_controlnet", "stock_ksampler_patch", "ablation_content_terms", "ablation_style_terms",
            "style_transfer_model_features", "style_transfer_model_features_flux",
            "style_transfer_model_features_qwen_image", "style_transfer_regions", "style_transfer_wan"}
# Workflows of the tiny DiT families: the family ComfyUI's detection must name in the tiny run.
DIT_WORKFLOWS = {"style_transfer_z_image_turbo": "z_image", "style_transfer_flux2": "flux2"}
# The checkpoint-only DiT workflows: the family their model-feature terms must have read in the tiny run.
MODEL_FEATURE_DITS = {"style_transfer_model_features_flux": "flux", "style_transfer_model_features_qwen_image": "qwen_image"}
# Video to video: the content is a clip (LoadVideo) and the result a video file (SaveVideo).
VIDEO_WORKFLOWS = {"style_transfer_wan"}


def _script():
    spec = importlib.util.spec_from_file_location("sg_workflows_script", REPO_ROOT / "scripts" / "workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def defs(comfy_base):
    return defs_in_process()


def _ui(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def _api(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


@pytest.mark.compat
def test_shipped_set_is_complete():
    assert {p.stem for p in WORKFLOWS.glob("*.json")} == EXPECTED
    assert {p.stem for p in (WORKFLOWS / "api").glob("*.json")} == EXPECTED


@pytest.mark.compat
def test_api_twins_are_current(defs):
    """Each twin is exactly what the generator makes from its editor file today."""
    assert _script().stale_twins(defs) == []


@pytest.mark.compat
def test_editor_files_are_what_the_definitions_build(defs):
    """The committed editor files match scripts/workflows.py's definitions (build was re-run)."""
    script = _script()
    for name in script.DEFINITIONS:
        assert script.build(name, defs) == (WORKFLOWS / f"{name}.json").read_text(), f"{name}: run `scripts/workflows.py build`"


@pytest.mark.compat
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_workflow_explains_itself(name):
    """A note node that names every model file the workflow expects, and titled image inputs."""
    from headless.testbed.standins.names import model_files

    ui = _ui(name)
    notes = [n for n in ui["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    assert notes, f"{name} has no note node"
    text = "\n".join(str(v) for n in notes for v in n["widgets_values"])
    files = model_files(_api(name))
    assert files, f"{name} names no model files"
    for _node, _input, file_name, _folder in files:
        assert file_name in text, f"{name}: the note does not say where {file_name} goes"
    titles = {n.get("title") for n in ui["nodes"] if n["type"] in ("LoadImage", "LoadVideo")}
    assert titles == ({"Content video", "Style image"} if name in VIDEO_WORKFLOWS else {"Content image", "Style image"})
    # Every measurement is displayed in the editor (a node's own ui text is not drawn by the frontend).
    api = _api(name)
    shown = {tuple(n["inputs"]["source"]) for n in api.values() if n["class_type"] == "PreviewAny"}
    measures = [nid for nid, n in api.items() if n["class_type"] == "StyleGuidanceMeasure"]
    assert measures and all((nid, 0) in shown for nid in measures), f"{name}: a Measure Losses result is not shown"


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in VIDEO_WORKFLOWS else [pytest.mark.compat])
                                  for n in sorted(EXPECTED)])
def test_each_workflow_validates_and_runs(name, comfy, comfy_base):
    """The twin passes ComfyUI's validator and executes on the stand-ins, measuring all five terms."""
    from headless.testbed.standins.install import tiny_prompt

    prompt = tiny_prompt(_api(name))  # text encoders that cannot shrink: seeded conditioning
    result = comfy.run(prompt)
    images = [img for ui in result.outputs.values() for img in ui.get("images", [])]
    assert images, f"{name} saved no image"
    for img in images:  # saved results in output/, previews (e.g. the canny map) in temp/
        assert (comfy_base / img.get("type", "output") / img["subfolder"] / img["filename"]).is_file()
    assert any(img.get("type", "output") == "output" for img in images), f"{name} saved no result"
    measures = [nid for nid, node in prompt.items() if node["class_type"] == "StyleGuidanceMeasure"]
    assert measures
    kinds = {n["class_type"] for n in prompt.values()}
    for nid in measures:
        report = json.loads(comfy.output(nid, 1))
        assert math.isfinite(report["total"]), report
        assert report["terms"] and all(math.isfinite(t["value"]) for t in report["terms"]), report
        # every term with a weight got a share of the direction, and the shares add up to one
        assert abs(sum(t["share"] or 0.0 for t in report["terms"]) - 1.0) < 1e-3, report
    if "StyleGuidanceAttentionDistillation" in kinds:  # measured on the model's own features
        names = {t["name"] for nid in measures for t in json.loads(comfy.output(nid, 1))["terms"]}
        assert {"zecon_content", "attention_distillation_style"} <= names, names
    if name.startswith("ablation_"):  # one sampler per loss term, each guided by that term alone
        samplers = [v for v in prompt.values() if v["class_type"] == "StyleGuidanceSampler"]
        terms = [prompt[s["inputs"]["losses"][0]]["class_type"] for s in samplers]
        assert len(samplers) == len(set(terms)) == (3 if "content" in name else 2), terms
        assert len([v for v in prompt.values() if v["class_type"] == "SaveImage"]) == len(samplers)
    if name in DIT_WORKFLOWS:
        _check_dit_run(name, prompt, result, comfy)
    if name in MODEL_FEATURE_DITS:
        _check_model_feature_dit_run(name, prompt, result, comfy)


def _check_model_feature_dit_run(name: str, prompt: dict, result, comfy) -> None:
    """Flux / Qwen-Image checkpoint-only: the stand-in ran as its family and every step in the window was guided."""
    from headless.testbed.standins.families import FAMILIES

    (loader,) = [nid for nid, n in prompt.items() if n["class_type"] == "UNETLoader"]
    model = comfy.output(loader)
    assert type(model.model.model_config).__name__ == FAMILIES[MODEL_FEATURE_DITS[name]].comfy_config
    (guider,) = [n for n in prompt.values() if n["class_type"] == "StyleGuidanceGuider"]
    (invert,) = [n for n in prompt.values() if n["class_type"] == "StyleGuidanceInvert"]
    events = [d for e, d in result.messages if e == "style_guidance.step"]
    # window 0-end_percent of the inverted schedule: at least the first step, never more than all of them
    assert 1 <= len(events) <= invert["inputs"]["steps"], events
    assert guider["inputs"]["end_percent"] < 1.0


def _check_dit_run(name: str, prompt: dict, result, comfy) -> None:
    """Z-Image Turbo / Flux.2: the tiny DiT ran as its family, and guidance ran at the steps its window says."""
    from headless.testbed.standins.families import FAMILIES

    fam = FAMILIES[DIT_WORKFLOWS[name]]
    (loader,) = [nid for nid, n in prompt.items() if n["class_type"] == "SGTestDiTLoader"]
    model = comfy.output(loader)
    assert type(model.model.model_config).__name__ == fam.comfy_config, "ComfyUI did not take it for the family"
    guided = [nid for nid, n in prompt.items() if n["class_type"] in ("StyleGuidanceSampler", "StyleGuidanceGuider")]
    (node,) = guided
    events = [d for e, d in result.messages if e == "style_guidance.step"]  # one guided node (a Guider's: its sampler)
    assert events, f"{name}: no guided step reported"
    if name == "style_transfer_z_image_turbo":  # few steps: the shipped window 0-1 guides every one of them
        assert prompt[node]["inputs"]["end_percent"] == 1.0
        assert len(events) == prompt[node]["inputs"]["steps"], events
    else:  # Flux.2: its only decoder is its (narrow, batch-norm) VAE, for guidance too
        vae = prompt[prompt[node]["inputs"]["vae"][0]]
        assert vae["class_type"] == "SGTestKLVAE" and vae["inputs"]["batch_norm_latent"] is True
        assert any(n["class_type"] == "SGTestConditioningExtra" and n["inputs"]["key"] == "pooled_output"
                   for n in prompt.values())


@pytest.mark.compat
def test_template_browser_lists_the_workflows(comfy_server):
    """ComfyUI's /workflow_templates lists the pack's editor files (not the API twins)."""
    listed = comfy_server.get("/workflow_templates")
    ours = [names for names in listed.values() if "style_transfer_fast" in names]
    assert ours, listed
    assert set(ours[0]) == EXPECTED


# ------------------------------------------------------------------------------------------
# The converter on the editor features the shipped files do not use


def _graph(defs) -> tuple[UIGraph, dict]:
    g = UIGraph(defs)
    ckpt = g.add("CheckpointLoaderSimple", 0, ckpt_name="a.safetensors")
    latent = g.add("EmptyLatentImage", 0, width=64, height=64)
    sampler = g.add("KSampler", 1, model=ckpt[0], positive=ckpt[0], negative=ckpt[0], latent_image=latent[0],
                    seed=7, steps=3, cfg=2.0)
    return g, {"ckpt": ckpt, "latent": latent, "sampler": sampler}


@pytest.mark.compat
def test_widgets_map_in_declaration_order_with_editor_extras(defs):
    g, n = _graph(defs)
    ui = g.to_json()
    ks = next(x for x in ui["nodes"] if x["type"] == "KSampler")
    assert ks["widgets_values"][:3] == [7, "fixed", 3], "seed is followed by its control_after_generate value"
    api = ui_to_api(ui, defs)
    inputs = api[str(n["sampler"].id)]["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["cfg"]) == (7, 3, 2.0)
    assert inputs["model"] == [str(n["ckpt"].id), 0]
    assert inputs["latent_image"] == [str(n["latent"].id), 0]


@pytest.mark.compat
def test_reroute_primitive_bypass_and_mute(defs):
    g, n = _graph(defs)
    ui = g.to_json()
    by_id = {x["id"]: x for x in ui["nodes"]}
    ks = by_id[n["sampler"].id]
    # A Reroute between the checkpoint and the sampler's model input.
    model_in = next(i for i in ks["inputs"] if i["name"] == "model")
    old = next(link for link in ui["links"] if link[0] == model_in["link"])
    ui["nodes"].append({"id": 90, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 900}],
                        "outputs": [{"name": "", "type": "MODEL", "links": [901]}], "widgets_values": []})
    ui["links"] = [link for link in ui["links"] if link is not old]
    ui["links"] += [[900, old[1], old[2], 90, 0, "MODEL"], [901, 90, 0, ks["id"], old[4], "MODEL"]]
    model_in["link"] = 901
    # A PrimitiveNode driving the steps widget.
    ui["nodes"].append({"id": 91, "type": "PrimitiveNode", "mode": 0, "outputs": [{"name": "INT", "type": "INT", "links": [902]}],
                        "widgets_values": [11, "fixed"]})
    ks["inputs"].append({"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 902})
    ui["links"].append([902, 91, 0, ks["id"], len(ks["inputs"]) - 1, "INT"])
    api = ui_to_api(ui, defs)
    inputs = api[str(ks["id"])]["inputs"]
    assert inputs["model"] == [str(n["ckpt"].id), 0]
    assert inputs["steps"] == 11
    assert "90" not in api and "91" not in api

    # Bypassing a LoRA passes its model input through; muting the sampler drops it.
    g2 = UIGraph(defs)
    ckpt = g2.add("CheckpointLoaderSimple", 0, ckpt_name="a.safetensors")
    lora = g2.add("LoraLoader", 1, model=ckpt[0], clip=ckpt[1], lora_name="x.safetensors")
    latent = g2.add("EmptyLatentImage", 0)
    ks2 = g2.add("KSampler", 2, model=lora[0], positive=ckpt[0], negative=ckpt[0], latent_image=latent[0])
    lora.mode = 4
    api2 = ui_to_api(g2.to_json(), defs)
    assert str(lora.id) not in api2
    assert api2[str(ks2.id)]["inputs"]["model"] == [str(ckpt.id), 0]
    ks2.mode = 2
    assert str(ks2.id) not in ui_to_api(g2.to_json(), defs)


@pytest.mark.compat
def test_converter_names_missing_node_types(defs):
    g, _ = _graph(defs)
    ui = g.to_json()
    ui["nodes"][0] = {**copy.deepcopy(ui["nodes"][0]), "type": "SomePackThatIsNotInstalled"}
    with pytest.raises(WorkflowError, match="SomePackThatIsNotInstalled"):
        ui_to_api(ui, defs)
    with pytest.raises(WorkflowError, match="editor-format"):
        ui_to_api(_api("style_transfer_fast"), defs)


@pytest.mark.compat
def test_sample_images_are_licensed():
    notice = (REPO_ROOT / "NOTICE").read_text()
    for image in (WORKFLOWS / "images").iterdir():
        assert image.name in notice, f"{image.name} has no licence line in NOTICE"
    assert Path(REPO_ROOT / "workflows" / "images").is_dir()


@pytest.mark.compat
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nodes_carry_their_pack_and_version(name):
    """cnr_id/ver as the editor saves them: this pack's registry id and version, or comfy-core."""
    script = _script()
    for node in _ui(name)["nodes"]:
        props = node.get("properties", {})
        if node["type"].startswith("StyleGuidance"):
            assert (props.get("cnr_id"), props.get("ver")) == (script.PACK_ID, script.PACK_VERSION), node["type"]
        elif node["type"] not in ("Note", "MarkdownNote", "Reroute"):  # frontend-only nodes: no pack
            assert props.get("cnr_id") == "comfy-core" and props.get("ver"), f"{name}: {node['type']} has {props}"
