"""Fuzzed inputs for every Style Guidance node, through ComfyUI's own validation and executor.

Property (hypothesis, derandomized): whatever the widget values (drawn from each node's own
schema: defaults, values inside the declared ranges, just outside them, NaN/inf, unknown
choices) and whatever the pictures (odd sizes down to 1x1 and 1x4097, 1-5 channels, integer,
half and bool dtypes, NaN, all-zero masks of every shape, batch sizes that do not match between
content, style, latent and mask), a case ends either in a result or in an error that names an
input of the node that failed. No case writes output when it fails, and no case changes another
node's cached output. A sample of the cases is also sent to a real server, which must stay up.

Cases that reach sampling use 1-2 steps on the tiny models; the counts are printed (``-s``)
and kept in test-artifacts/fuzz.json.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed

pytestmark = pytest.mark.slow

# In-range draws of inputs whose cost grows with the value are capped (out-of-range draws are not).
COST_CAPS = {"steps": 2, "num_patches": 64, "num_cutouts": 3, "loss_resolution": 96, "style_size": 96,
             "recurrence": 2, "refine": 1}
NEVER = {"allow_download": False}  # no network in tests
LOSS_EXAMPLES = 20  # per node: 10 nodes
SAMPLING_EXAMPLES = 5  # per node: 6 nodes, each case samples (1-2 steps)
COUNTS: Counter = Counter()
EXAMPLES: dict[tuple[str, str], str] = {}  # the first message of each (node, outcome), for the artifact
SERVER_SAMPLE: list[dict] = []

SIZES = st.sampled_from([(1, 1), (1, 4097), (4097, 1), (7, 13), (33, 17), (64, 64), (100, 36)])
IMAGE_DTYPES = st.sampled_from(["float32", "float32", "float16", "bfloat16", "float64", "uint8", "int64", "bool"])


def _schema_inputs(class_type: str) -> list:
    import nodes

    return list(nodes.NODE_CLASS_MAPPINGS[class_type].define_schema().inputs)


def _widget(inp) -> st.SearchStrategy | None:
    """A strategy for one widget input of a V3 schema (None for links): mostly the default or a value
    inside the declared range, sometimes just outside it, NaN/inf or an unknown choice."""
    from comfy_api.latest import io

    name = inp.id
    if name in NEVER:
        return st.just(NEVER[name])
    default = getattr(inp, "default", None)
    if isinstance(inp, io.Int.Input):
        lo, hi = inp.min if inp.min is not None else 0, inp.max if inp.max is not None else 2**31
        cap = min(hi, COST_CAPS.get(name, hi))
        usual = st.just(min(default if default is not None else lo, max(lo, cap)))
        inside, odd = st.integers(lo, max(lo, cap)), st.sampled_from([lo - 1, hi + 1])
    elif isinstance(inp, io.Float.Input):
        lo, hi = inp.min if inp.min is not None else -1e6, inp.max if inp.max is not None else 1e6
        usual = st.just(default if default is not None else lo)
        inside, odd = st.floats(lo, hi), st.sampled_from([lo - 0.5, hi + 0.5, math.nan, math.inf, -math.inf])
    elif isinstance(inp, io.Combo.Input):
        options = list(inp.options or [])
        usual = st.just(default if default is not None else options[0])
        inside, odd = st.sampled_from(options), st.just("not-a-choice")
    elif isinstance(inp, io.Boolean.Input):
        return st.booleans()
    elif isinstance(inp, io.String.Input):
        usual = st.just(default or "")
        inside, odd = usual, st.sampled_from(["", " ", "no-such-arch", "../x"])
    else:
        return None
    return st.integers(0, 9).flatmap(lambda k: usual if k < 5 else inside if k < 9 else odd)


@st.composite
def widgets(draw, class_type: str, fixed: dict | None = None) -> dict:
    """Widget values for a node, optional ones sometimes left out."""
    out = {}
    for inp in _schema_inputs(class_type):
        strat = _widget(inp)
        if strat is None or inp.id in (fixed or {}):
            continue
        if getattr(inp, "optional", False) and draw(st.booleans()):
            continue
        out[inp.id] = draw(strat)
    return {**out, **(fixed or {})}


@st.composite
def tensor_node(draw, kind: str) -> dict:
    """An SGTestTensor node: an IMAGE (often odd in size, sometimes in layout, dtype, channels or
    values), or a MASK of any shape."""
    b = draw(st.integers(1, 3))
    h, w = draw(SIZES)
    odd = draw(st.integers(0, 3)) == 0  # one in four: something besides the size is wrong
    if kind == "image":
        c = draw(st.sampled_from([1, 4, 2, 5])) if odd and draw(st.booleans()) else 3
        shape = draw(st.sampled_from([(h, w, c), (b, c, h, w), (h, w)])) if odd and draw(st.booleans()) \
            else (b, h, w, c)
        dtype = draw(IMAGE_DTYPES) if odd else "float32"
        fill = draw(st.sampled_from(["zeros", "ones", "nan", "big"])) if odd and draw(st.booleans()) else "texture"
    else:
        shape = draw(st.sampled_from([(b, h, w), (h, w), (b, 1, h, w), (b, h, w, 1), (1,), (b, h, w, 3)]))
        dtype = draw(st.sampled_from(["float16", "uint8", "bool", "int64"])) if odd else "float32"
        fill = draw(st.sampled_from(["zeros", "nan", "ones"])) if odd else "texture"
    return {"class_type": "SGTestTensor", "inputs": {"shape": ",".join(map(str, shape)), "dtype": dtype,
                                                      "fill": fill, "seed": draw(st.integers(0, 9))}}


def _providers(models: dict) -> dict:
    """The networks and conditioning every case may link to (never fuzzed)."""
    g = G.base_graph(models)
    for k in ("content", "style", "enc"):
        g.pop(k)
    return g


LOSS_NODES = {
    # node: (reference input, its network inputs)
    "StyleGuidanceContentMSE": ("content", {}),
    "StyleGuidanceVGGContent": ("content", {"vgg": G.link("vgg")}),
    "StyleGuidanceZeCon": ("content", {"vgg": G.link("vgg")}),
    "StyleGuidanceCLIPStyle": ("style", {"open_clip": G.link("oclip")}),
    "StyleGuidanceGramStyle": ("style", {"vgg": G.link("vgg")}),
    "StyleGuidanceRange": (None, {}),
    "StyleGuidanceTemporalConsistency": ("content", {}),
}


LOSS_GROUP = [*LOSS_NODES, "StyleGuidanceCombine", "StyleGuidanceVGGLoader", "StyleGuidanceOpenCLIPLoader",
              "StyleGuidanceMeasure"]
SAMPLING_GROUP = ["StyleGuidanceSampler", "StyleGuidanceGuider", "StyleGuidanceApply", "StyleGuidanceModelZeCon",
                  "StyleGuidanceAttentionDistillation", "StyleGuidanceInvert"]


@st.composite
def loss_case(draw, models: dict, class_type: str) -> dict:
    """One loss node (or Combine / a loader / Measure) with fuzzed inputs, measured on a fuzzed image."""
    g = _providers(models)
    g["gen"] = draw(tensor_node("image"))
    fuzzed = "node"
    if class_type in LOSS_NODES:
        ref, nets = LOSS_NODES[class_type]
        links = dict(nets)
        if ref:
            g["ref"] = draw(tensor_node("image"))
            links[ref] = G.link("ref")
        if draw(st.booleans()):
            g["mask"] = draw(tensor_node("mask"))
            links["mask"] = G.link("mask", 1)
        if draw(st.booleans()):
            g["prev"] = {"class_type": "StyleGuidanceRange", "inputs": {"weight": 0.5}}
            links["losses"] = G.link("prev")
        if class_type == "StyleGuidanceCLIPStyle" and draw(st.integers(0, 4)) == 0:
            links.pop("open_clip")  # no CLIP model at all: must be refused by name
        g["node"] = {"class_type": class_type, "inputs": {**draw(widgets(class_type)), **links}}
        losses = "node"
    elif class_type == "StyleGuidanceCombine":
        g["a"] = {"class_type": "StyleGuidanceRange", "inputs": {"weight": 0.5}}
        g["b"] = {"class_type": "StyleGuidanceContentMSE", "inputs": {"content": G.link("ref"), "weight": 1.0,
                                                                       "fit": "stretch"}}
        g["ref"] = draw(tensor_node("image"))
        g["node"] = {"class_type": class_type, "inputs": {"losses_a": G.link("a"), "losses_b": G.link("b")}}
        losses = "node"
    elif class_type == "StyleGuidanceVGGLoader":
        name = draw(st.sampled_from([models["vgg"], models["vgg"], "no-such-vgg.pth", "../vgg19.pth", ""]))
        g["node"] = {"class_type": class_type, "inputs": {"vgg_name": name, "allow_download": False}}
        g["ref"] = draw(tensor_node("image"))
        g["gram"] = {"class_type": "StyleGuidanceGramStyle", "inputs": {
            "style": G.link("ref"), "vgg": G.link("node"), "weight": 1.0, "layers": "relu1_1..relu5_1 (Gatys)",
            "style_size": 64}}
        losses = "gram"
    elif class_type == "StyleGuidanceOpenCLIPLoader":
        arch = draw(st.sampled_from([models["open_clip_arch"], models["open_clip_arch"], "ViT-B-32", "nope", ""]))
        name = draw(st.sampled_from([models["open_clip"], models["open_clip"], "no-such.safetensors"]))
        g["node"] = {"class_type": class_type, "inputs": {"arch": arch, "clip_name": name}}
        g["ref"] = draw(tensor_node("image"))
        g["clip"] = {"class_type": "StyleGuidanceCLIPStyle", "inputs": {
            "style": G.link("ref"), "open_clip": G.link("node"), "weight": 1.0, "num_cutouts": 1, "cut_min": 0.5,
            "distance": "spherical", "flip": False, "seed": 0, "style_size": 64}}
        losses = "clip"
    else:  # Measure: fuzzed image and seed on a fixed chain
        g["mse"] = {"class_type": "StyleGuidanceRange", "inputs": {"weight": 1.0}}
        g["m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {
            "image": G.link("gen"), "losses": G.link("mse"), **draw(widgets("StyleGuidanceMeasure"))}}
        return {"class_type": class_type, "prompt": g, "fuzzed": "m"}
    g["m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": G.link("gen"), "losses": G.link(losses),
                                                               "seed": 0}}
    return {"class_type": class_type, "prompt": g, "fuzzed": fuzzed}


@st.composite
def sampling_case(draw, models: dict, class_type: str) -> dict:
    """A guidance node (sampler, guider, patch) or a model-feature node, with mismatched batches and odd values."""
    g = _providers(models)
    lb = draw(st.integers(1, 3))
    side = draw(st.sampled_from([32, 40, 64]))
    g["pic"] = {"class_type": "SGTestImage", "inputs": {"width": side, "height": side, "seed": 1, "batch_size": lb}}
    g["enc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("pic"), "vae": G.link("vae")}}
    g["ref"] = draw(tensor_node("image"))
    chain = {"content": G.link("ref"), "weight": 1.0, "fit": "stretch"}
    if draw(st.booleans()):
        g["mask"] = draw(tensor_node("mask"))
        chain["mask"] = G.link("mask", 1)
    g["loss"] = {"class_type": "StyleGuidanceContentMSE", "inputs": chain}
    samp = {"seed": 1, "steps": 1, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.6}
    latent_out = "node"
    if class_type == "StyleGuidanceSampler":
        fixed = {"model": G.link("ckpt"), "positive": G.link("pos"), "negative": G.link("neg"),
                 "latent_image": G.link("enc"), "vae": G.link("vae"), "losses": G.link("loss")}
        g["node"] = {"class_type": class_type, "inputs": draw(widgets(class_type, fixed))}
    elif class_type == "StyleGuidanceGuider":
        fixed = {"model": G.link("ckpt"), "positive": G.link("pos"), "negative": G.link("neg"),
                 "vae": G.link("vae"), "losses": G.link("loss")}
        g["node"] = {"class_type": class_type, "inputs": draw(widgets(class_type, fixed))}
        g["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}}
        g["ksel"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
        g["sig"] = {"class_type": "BasicScheduler", "inputs": {"model": G.link("ckpt"), "scheduler": "normal",
                                                                "steps": 1, "denoise": 0.6}}
        g["out"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": G.link("noise"), "guider": G.link("node"), "sampler": G.link("ksel"), "sigmas": G.link("sig"),
            "latent_image": G.link("enc")}}
        latent_out = "out"
    elif class_type == "StyleGuidanceApply":
        fixed = {"model": G.link("ckpt"), "vae": G.link("vae"), "losses": G.link("loss")}
        g["node"] = {"class_type": class_type, "inputs": draw(widgets(class_type, fixed))}
        g["out"] = {"class_type": "KSampler", "inputs": {"model": G.link("node"), "positive": G.link("pos"),
                                                         "negative": G.link("neg"), "latent_image": G.link("enc"), **samp}}
        latent_out = "out"
    elif class_type == "StyleGuidanceInvert":
        fixed = {"model": G.link("ckpt"), "positive": G.link("pos"), "negative": G.link("neg"), "latent": G.link("enc")}
        g["node"] = {"class_type": class_type, "inputs": draw(widgets(class_type, fixed))}
        latent_out = None
        g["lat"] = {"class_type": "SaveLatent", "inputs": {"samples": G.link("node", 1), "filename_prefix": "fuzz"}}
    else:  # the model-feature terms: another latent batch as their reference, into the guided sampler
        ob = draw(st.integers(1, 3))
        g["pic2"] = {"class_type": "SGTestImage", "inputs": {"width": side, "height": side, "seed": 2, "batch_size": ob}}
        g["enc2"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("pic2"), "vae": G.link("vae")}}
        ref = "content" if class_type == "StyleGuidanceModelZeCon" else "style"
        links = {ref: G.link("enc2")}
        if "mask" in g and draw(st.booleans()):
            links["mask"] = G.link("mask", 1)
        g["node"] = {"class_type": class_type, "inputs": {**draw(widgets(class_type)), **links}}
        g["s"] = {"class_type": "StyleGuidanceSampler", "inputs": {
            "model": G.link("ckpt"), "positive": G.link("pos"), "negative": G.link("neg"), "latent_image": G.link("enc"),
            "vae": G.link("vae"), "losses": G.link("node"), **samp, **G.guidance_options()}}
        latent_out = "s"
    if latent_out:
        g["lat"] = {"class_type": "SaveLatent", "inputs": {"samples": G.link(latent_out), "filename_prefix": "fuzz"}}
    return {"class_type": class_type, "prompt": g, "fuzzed": "node"}


# Nodes of a case whose errors are the pack's to explain: its own nodes, and the core samplers
# that run its guidance (a patched KSampler fails where the guidance does).
CHECKED = {"node", "m", "out", "s", "gram", "clip", "loss", "prev", "a", "b"}


def _input_names(prompt: dict, node_id: str) -> set[str]:
    """The inputs the error may name: the failing node's and those of every pack node of the case."""
    names = set(prompt[node_id].get("inputs", {}))
    for node in prompt.values():
        if node["class_type"].startswith("StyleGuidance"):
            names |= {i.id for i in _schema_inputs(node["class_type"])}
    return names


def _check_case(comfy, comfy_base, case: dict) -> tuple[str, str]:
    """Validate and run one case like the server does; assert the property; return (outcome, message)."""
    import execution

    prompt = case["prompt"]
    before_files = {p for p in (comfy_base / "output").rglob("*") if p.is_file()}
    ok, error, outputs, node_errors = asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
    outcome, said = "ok", ""
    if node_errors or not ok:
        for node_id, errs in node_errors.items():
            if node_id in CHECKED:
                text = json.dumps(errs)
                names = _input_names(prompt, node_id)
                assert any(n in text for n in names), f"validation error names no input of {node_id}: {text[:800]}"
                said = said or "; ".join(e.get("details", "") or e.get("message", "") for e in errs.get("errors", []))
        outcome = "refused at validation"
        if not outputs:
            if not node_errors:  # prompt-level error (e.g. no outputs): must say why
                assert error and error.get("message"), error
            return outcome, said
    comfy.executor.execute(prompt, str(uuid.uuid4()), {"client_id": "fuzz"}, outputs)
    if not comfy.executor.success:
        errs = [d for e, d in comfy.executor.status_messages if e == "execution_error"]
        assert errs, comfy.executor.status_messages
        err = errs[0]
        where, message = err["node_id"], err["exception_message"]
        if where in CHECKED:
            names = _input_names(prompt, where)
            assert any(n in message for n in names), (
                f"{prompt[where]['class_type']} failed with an error that names none of the inputs {sorted(names)}:\n"
                f"{err['exception_type']}: {message}\n{''.join(err['traceback'][-6:])}")
        after_files = {p for p in (comfy_base / "output").rglob("*") if p.is_file()}
        assert after_files == before_files, f"a failed case wrote {sorted(map(str, after_files - before_files))}"
        outcome, said = f"error at {prompt[where]['class_type']}", message.strip()
    _check_sources_unchanged(comfy, prompt)
    return outcome, said


def _check_sources_unchanged(comfy, prompt: dict) -> None:
    """The fuzzed tensors other nodes consumed are still what their node made (nobody wrote into them)."""
    import nodes

    for node_id, node in prompt.items():
        if node["class_type"] != "SGTestTensor":
            continue
        try:
            cached = comfy.output(node_id)
        except KeyError:
            continue
        fresh = nodes.NODE_CLASS_MAPPINGS["SGTestTensor"]().run(**node["inputs"])[0]
        assert torch.equal(cached.nan_to_num(), fresh.nan_to_num()) and cached.dtype == fresh.dtype, \
            f"{node_id}'s output was modified by a consumer"


def _run(comfy, comfy_base, case: dict) -> None:
    outcome, said = _check_case(comfy, comfy_base, case)
    COUNTS[(case["class_type"], outcome)] += 1
    if said:
        EXAMPLES.setdefault((case["class_type"], outcome), said[:300])
    if len(SERVER_SAMPLE) < 12 and COUNTS[(case["class_type"], outcome)] == 1:
        SERVER_SAMPLE.append(case)


# No shrinking: a failing case is reported as drawn (shrinking would rerun prompts for minutes).
_SETTINGS = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                 phases=[Phase.explicit, Phase.generate],
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                        HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def models(tiny_models):
    return tiny_models


def test_every_style_guidance_node_is_fuzzed(comfy_base):
    import nodes

    ours = {k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("StyleGuidance")}
    assert ours == set(LOSS_GROUP) | set(SAMPLING_GROUP), ours ^ (set(LOSS_GROUP) | set(SAMPLING_GROUP))


@pytest.mark.parametrize("class_type", LOSS_GROUP)
def test_fuzzed_loss_loader_and_measure_inputs(comfy, comfy_base, models, class_type):
    @settings(max_examples=LOSS_EXAMPLES, **_SETTINGS)
    @given(case=loss_case(models, class_type))
    def check(case):
        _run(comfy, comfy_base, case)

    check()


@pytest.mark.parametrize("class_type", SAMPLING_GROUP)
def test_fuzzed_guidance_and_model_feature_inputs(comfy, comfy_base, models, class_type):
    @settings(max_examples=SAMPLING_EXAMPLES, **_SETTINGS)
    @given(case=sampling_case(models, class_type))
    def check(case):
        _run(comfy, comfy_base, case)

    check()


def test_a_sample_of_the_cases_on_the_server_which_stays_up(comfy_server):
    assert SERVER_SAMPLE, "run the fuzz tests first (same module)"
    outcomes = Counter()
    for case in SERVER_SAMPLE:
        try:
            entry = comfy_server.wait(comfy_server.submit(case["prompt"]), timeout=600, poll=0.1)
            outcomes[entry["status"]["status_str"]] += 1
        except PromptFailed as e:  # refused at validation: HTTP 400 with node errors
            assert "400" in str(e), e
            outcomes["refused"] += 1
    assert comfy_server.get("/system_stats")["system"], "the server is gone"
    COUNTS[("server sample", json.dumps(dict(outcomes)))] += len(SERVER_SAMPLE)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if COUNTS:
        from conftest import ARTIFACTS

        rows = [{"node": k[0], "outcome": k[1], "cases": v, "example": EXAMPLES.get(k, "")}
                for k, v in sorted(COUNTS.items())]
        total = sum(v for k, v in COUNTS.items() if k[0] != "server sample")
        print(f"\nfuzz: {total} cases in-process, {len(SERVER_SAMPLE)} on the server")
        for r in rows:
            print(f"  {r['cases']:4d}  {r['node']}: {r['outcome']}")
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "fuzz.json").write_text(json.dumps({"total": total, "rows": rows}, indent=1))
