"""Tiny mode's replacement of text encoders that cannot shrink (headless.testbed.standins.tiny_text).

Plain prompt surgery, no ComfyUI: the shipped Qwen-Image workflow's CLIPLoader (Qwen2.5-VL 7B, built
at full size by ComfyUI whatever the file holds) is dropped and its two CLIPTextEncode nodes become
SGTestConditioning of the width the Qwen-Image stand-in reads. The rewritten prompt runs in
tests/test_workflows.py (in-process) and tests/test_family_workflows.py (the runner).
"""

from __future__ import annotations

import copy
import json

import pytest

from headless.testbed.base import REPO_ROOT
from headless.testbed.standins import tiny_text as T
from headless.testbed.standins.names import LIGHTTAEW2_1, QWEN_IMAGE_TEXT_ENCODER, model_files

API = REPO_ROOT / "workflows" / "api"


def _api(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text())


def _links(api: dict) -> set[str]:
    return {str(v[0]) for n in api.values() for v in n["inputs"].values() if isinstance(v, list) and len(v) == 2}


def test_qwen_image_text_encoder_becomes_conditioning_of_the_stand_ins_width():
    api = _api("style_transfer_qwen_image")
    before = copy.deepcopy(api)
    (loader,) = [nid for nid, n in api.items() if n["class_type"] == "CLIPLoader"]
    encoders = {nid: n["inputs"]["text"] for nid, n in api.items() if n["class_type"] == "CLIPTextEncode"}
    assert len(encoders) == 2

    new, replaced = T.replace_fixed_text_encoders(api)

    assert api == before, "the input prompt must not change"
    assert loader not in new and loader not in _links(new), "the orphaned loader is dropped, nothing links to it"
    assert set(new) == set(api) - {loader}
    for nid, text in encoders.items():
        node = new[nid]
        assert node["class_type"] == T.CONDITIONING_NODE
        assert node["inputs"] == {"text": text, "seed": 0, "tokens": 32, "dim": 3584, "pooled_dim": 0}
        assert "tiny mode" in node["_meta"]["title"]
    assert {nid: n for nid, n in new.items() if nid not in encoders} == \
        {nid: n for nid, n in api.items() if nid not in encoders and nid != loader}
    (rep,) = replaced
    assert (rep.loader, rep.file, sorted(rep.nodes)) == (loader, QWEN_IMAGE_TEXT_ENCODER, sorted(encoders))
    line = rep.describe()
    assert QWEN_IMAGE_TEXT_ENCODER in line and "Qwen2.5-VL 7B" in line and "32x3584" in line
    # No model file of the rewritten prompt is a text encoder any more.
    assert not [f for f in model_files(new) if f[3] == "text_encoders"]
    # Idempotent: nothing left to replace.
    again, none = T.replace_fixed_text_encoders(new)
    assert again == new and none == []


@pytest.mark.parametrize("name", ["style_transfer_flux", "style_transfer_sd15", "style_transfer_sd35"])
def test_prompts_without_such_encoders_are_left_alone(name):
    api = _api(name)
    new, replaced = T.replace_fixed_text_encoders(api)
    assert new == api and replaced == []


def test_a_loader_feeding_anything_but_a_text_encode_node_is_refused_by_name():
    api = {
        "1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen.safetensors", "type": "qwen_image"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["1", 0]}},
        "3": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 0], "stop_at_clip_layer": -2},
              "_meta": {"title": "Skip"}},
    }
    with pytest.raises(ValueError, match=r"node 3 'Skip' \(CLIPSetLastLayer\)"):
        T.replace_fixed_text_encoders(api)
    # Another CLIPLoader type (CLIP-L, a tiny file stands in) is not touched; nor is a linked text lost.
    api["1"]["inputs"]["type"] = "stable_diffusion"
    assert T.replace_fixed_text_encoders(api)[0] == api
    api = {"1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "q.safetensors", "type": "qwen_image"}},
           "5": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "x"}},
           "2": {"class_type": "CLIPTextEncode", "inputs": {"text": ["5", 0], "clip": ["1", 0]}}}
    new, _ = T.replace_fixed_text_encoders(api)
    assert new["2"]["inputs"]["text"] == ["5", 0] and set(new) == {"2", "5"}


def test_entries_match_by_type_then_file_name():
    only_qwen3 = T.FixedTextEncoder("lumina2", "Qwen3 4B", "z_image", dim=2560, name_contains="qwen_3_4b")
    assert only_qwen3.matches("lumina2", "models/Qwen_3_4B_fp8.safetensors")
    assert not only_qwen3.matches("lumina2", "gemma_2_2b_fp16.safetensors")
    assert not only_qwen3.matches("qwen_image", "qwen_3_4b.safetensors")
    assert not only_qwen3.matches("lumina2", ["link", 0])
    assert T.fixed_text_encoder({"class_type": "DualCLIPLoader", "inputs": {"type": "qwen_image"}}) is None


def test_the_table_gives_each_family_stand_in_the_width_it_reads():
    """Each entry's conditioning fits the stand-in tiny mode installs for its family (no drift)."""
    from headless.testbed.standins.families import FAMILIES

    assert T.FIXED_TEXT_ENCODERS
    for entry in T.FIXED_TEXT_ENCODERS:
        fam = FAMILIES[entry.family]
        assert (entry.dim, entry.pooled) == (fam.context_dim, fam.pooled_dim), entry


def test_tiny_prompt_replaces_then_shrinks():
    from headless.testbed.standins.install import tiny_prompt

    api = _api("style_transfer_qwen_image")
    tiny = tiny_prompt(api, size=128, steps=4)
    kinds = {n["class_type"] for n in tiny.values()}
    assert "CLIPLoader" not in kinds and "CLIPTextEncode" not in kinds and T.CONDITIONING_NODE in kinds
    scale = next(n for n in tiny.values() if n["class_type"] == "ImageScale")
    sampler = next(n for n in tiny.values() if n["class_type"] == "StyleGuidanceSampler")
    assert (scale["inputs"]["width"], sampler["inputs"]["steps"], sampler["inputs"]["loss_resolution"]) == (128, 4, 128)
    assert sampler["inputs"]["vae"] == next([nid, 0] for nid, n in tiny.items()
                                            if n["inputs"].get("vae_name") == LIGHTTAEW2_1)


def test_video_tiny_decoders_are_read_from_vae_approx():
    files = {(name, folder) for _n, _i, name, folder in model_files(_api("style_transfer_qwen_image"))}
    assert (LIGHTTAEW2_1, "vae_approx") in files and ("qwen_image_vae.safetensors", "vae") in files
    prompt = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "lighttaew2_2.pth"}},
              "2": {"class_type": "VAELoader", "inputs": {"vae_name": "lighttaew2_1_mine.safetensors"}}}
    assert [f[3] for f in model_files(prompt)] == ["vae_approx", "vae"]  # ComfyUI's rule: the exact stem


def _server_backend(tmp_path, infos: dict):
    import io

    from headless import prompts as P
    from headless.progress import Progress
    from headless.run import Options, Run
    from headless.server import Servers

    path = API / "style_transfer_qwen_image.json"
    wf = P.Workflow(path.stem, path, None, _api(path.stem))
    opts = Options(workflow=str(path), content="", style="", server=list(infos), tiny=True)
    out = io.StringIO()
    backend = Servers(Run(opts, wf, [], Progress(0, stream=out, tty=False, out=out), tmp_path))
    backend.infos = infos
    return backend, wf, out


def test_server_tiny_mode_asks_for_the_conditioning_node_by_name(tmp_path):
    """A server without the test node: refused before anything is queued, saying what to copy where."""
    from headless.backend import SetupError

    backend, _wf, _out = _server_backend(tmp_path, {"http://127.0.0.1:1": {"CLIPTextEncode": {}}})
    with pytest.raises(SetupError, match=r"SGTestConditioning.*http://127\.0\.0\.1:1.*standin_nodes\.py"):
        backend.setup_models()


def test_server_tiny_mode_replaces_before_checking_the_files(tmp_path):
    """With the node there, the text encoder's file is not asked for; the banner names what was replaced."""
    api = _api("style_transfer_qwen_image")
    # The server lacks the text encoder's file (CLIPLoader offers another): without the rewrite first,
    # the file check would stop the run.
    info = {T.CONDITIONING_NODE: {"input": {}},
            "CLIPLoader": {"input": {"required": {"clip_name": [["clip_l.safetensors"]], "type": [["qwen_image"]]}}}}
    for nid, inp, name, _folder in model_files(api):
        cls = api[nid]["class_type"]
        if cls != "CLIPLoader":  # every file but the text encoder's is offered
            info.setdefault(cls, {"input": {"required": {}}})["input"]["required"].setdefault(inp, [[]])[0].append(name)
    backend, wf, out = _server_backend(tmp_path, {"http://s": info})
    assert backend.setup_models() is True
    assert "CLIPLoader" not in {n["class_type"] for n in wf.api.values()}
    assert f"Replaced: text encoder {QWEN_IMAGE_TEXT_ENCODER}" in out.getvalue()
