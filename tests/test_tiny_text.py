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
from headless.testbed.standins.names import (
    FLUX2_TEXT_ENCODER,
    FLUX2_VAE,
    LIGHTTAEW2_1,
    QWEN_IMAGE_TEXT_ENCODER,
    Z_IMAGE_TEXT_ENCODER,
    model_files,
)

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
        assert (entry.dim, entry.pooled, entry.extra) == (fam.context_dim, fam.pooled_dim, fam.cond_extra), entry


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


def _server_backend(tmp_path, infos: dict, workflow: str = "style_transfer_qwen_image"):
    import io

    from headless import prompts as P
    from headless.progress import Progress
    from headless.run import Options, Run
    from headless.server import Servers

    path = API / f"{workflow}.json"
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


# ------------------------------------------------------------------------------------------
# Z-Image Turbo and Flux.2: their text encoders, and the loaders of full-size builds (standins.tiny_dit)


def test_z_image_and_flux2_text_encoders_become_conditioning_flux2_with_pooled_output_none():
    z = _api("style_transfer_z_image_turbo")
    new, (rep,) = T.replace_fixed_text_encoders(z)
    (nid,) = rep.nodes
    assert (rep.file, rep.encoder.family, new[nid]["inputs"]["dim"]) == (Z_IMAGE_TEXT_ENCODER, "z_image", 64)
    assert "ConditioningZeroOut" in {n["class_type"] for n in new.values()}, "the zeroed negative stays, fed by it"

    f2 = _api("style_transfer_flux2")
    (encode,) = [nid for nid, n in f2.items() if n["class_type"] == "CLIPTextEncode"]
    users = {nid for nid, n in f2.items() if any(v == [encode, 0] for v in n["inputs"].values())}
    new, (rep,) = T.replace_fixed_text_encoders(f2)
    assert rep.file == FLUX2_TEXT_ENCODER and rep.nodes == [encode]
    # The replaced id ends the chain (SGTestConditioning -> SGTestConditioningExtra), so its users keep their links.
    assert new[encode]["class_type"] == T.EXTRA_NODE
    assert new[encode]["inputs"]["key"] == "pooled_output" and new[encode]["inputs"]["shape"] == ""
    first = new[encode]["inputs"]["conditioning"][0]
    assert new[first]["class_type"] == T.CONDITIONING_NODE and new[first]["inputs"]["dim"] == 64
    assert all(any(v == [encode, 0] for v in new[u]["inputs"].values()) for u in users) and users
    assert "pooled_output None" in rep.describe()
    # Klein's Qwen3 under the same type flux2 is not Flux.2 dev's Mistral: no entry, not replaced.
    klein = {"1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "flux2"}}}
    assert T.replace_fixed_text_encoders(klein) == (klein, [])


def test_dit_and_narrow_vae_loaders_become_test_loaders_of_the_same_file():
    from headless.testbed.standins.tiny_dit import replace_full_size_loaders

    for name, swaps in (("style_transfer_z_image_turbo", {"UNETLoader": "SGTestDiTLoader"}),
                        ("style_transfer_flux2", {"UNETLoader": "SGTestDiTLoader", "VAELoader": "SGTestKLVAE"})):
        api = _api(name)
        before = copy.deepcopy(api)
        new, done = replace_full_size_loaders(api)
        assert api == before and set(new) == set(api), "same ids, input untouched"
        assert {(d.loader, d.replacement) for d in done} == set(swaps.items())
        for d in done:
            assert new[d.node]["class_type"] == d.replacement
            assert d.file in (new[d.node]["inputs"].get("unet_name"), new[d.node]["inputs"].get("vae_name"))
            assert f"{d.loader} node {d.node} ({d.file}) loaded by {d.replacement}" in d.describe()
        # Z-Image's other VAEs (ae, taef1) have ordinary stand-ins: untouched.
        untouched = {nid for nid in api if nid not in {d.node for d in done}}
        assert {nid: new[nid] for nid in untouched} == {nid: api[nid] for nid in untouched}
    vae = next(n for n in replace_full_size_loaders(_api("style_transfer_flux2"))[0].values()
               if n["class_type"] == "SGTestKLVAE")
    assert vae["inputs"] == {"vae_name": FLUX2_VAE, "z_channels": 32, "batch_norm_latent": True}


def test_loaders_of_other_files_are_left_alone():
    """Counterfactual: the same loaders with files that have ordinary stand-ins (Flux.1) stay as they are."""
    from headless.testbed.standins.tiny_dit import replace_full_size_loaders, tiny_rewrite

    flux = _api("style_transfer_flux")
    assert replace_full_size_loaders(flux) == (flux, [])
    assert tiny_rewrite(flux) == (flux, [])
    renamed = _api("style_transfer_z_image_turbo")
    for n in renamed.values():
        if n["class_type"] == "UNETLoader":
            n["inputs"]["unet_name"] = "my_z_image_merge.safetensors"  # not a name tiny mode knows
    assert replace_full_size_loaders(renamed)[1] == []


def test_the_loader_tables_match_the_stand_ins():
    """Every DiT file maps to a family built through ComfyUI's classes; the narrow VAE's layout is Flux.2's."""
    from headless.testbed.standins import flux2
    from headless.testbed.standins.families import FAMILIES
    from headless.testbed.standins.install import STANDINS
    from headless.testbed.standins.names import DIT_UNETS, NARROW_VAES, STANDIN_FOR

    for file, family in DIT_UNETS.items():
        assert FAMILIES[family].dit is not None
        assert STANDIN_FOR[("diffusion_models", file)] == family and family in STANDINS
    assert NARROW_VAES == {FLUX2_VAE: (flux2.VAE_Z, True)}
    assert STANDIN_FOR[("vae", FLUX2_VAE)] in STANDINS


def test_tiny_prompt_of_the_dit_workflows_names_no_core_loader_of_a_full_size_build():
    from headless.testbed.standins.install import tiny_prompt
    from headless.testbed.standins.tiny_dit import test_nodes, tiny_rewrite

    for name, nodes in (("style_transfer_z_image_turbo", {"SGTestConditioning", "SGTestDiTLoader"}),
                        ("style_transfer_flux2", {"SGTestConditioning", "SGTestConditioningExtra", "SGTestDiTLoader",
                                                  "SGTestKLVAE"})):
        tiny = tiny_prompt(_api(name))
        assert test_nodes(tiny) == nodes
        kinds = {n["class_type"] for n in tiny.values()}
        assert not kinds & {"CLIPLoader", "CLIPTextEncode", "UNETLoader"}
        # The stand-ins go under the same names: every file the tiny prompt names is one install writes.
        assert {f[2] for f in model_files(tiny)} <= {f[2] for f in model_files(_api(name))}
        _api_, lines = tiny_rewrite(_api(name))
        assert len(lines) == len(nodes) - (name == "style_transfer_flux2")  # one per replacement, not per node


def test_server_tiny_mode_asks_for_the_dit_loader_by_name(tmp_path):
    """A server with SGTestConditioning but not the DiT nodes: refused, naming the file that defines them."""
    from headless.backend import SetupError

    backend, _wf, _out = _server_backend(tmp_path, {"http://127.0.0.1:1": {T.CONDITIONING_NODE: {}}},
                                         "style_transfer_z_image_turbo")
    with pytest.raises(SetupError, match=r"SGTestDiTLoader.*http://127\.0\.0\.1:1 \(SGTestDiTLoader\).*standin_dit_nodes\.py"):
        backend.setup_models()
