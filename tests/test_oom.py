"""Out of memory in a loss network, mid-sampling (the test-only SGTestOOMLoss raises
``torch.OutOfMemoryError`` on the chain's 2nd guided evaluation, holding a ballast on the graph):
the prompt fails with the pack's advice, what the failed evaluation held is released, the shared
model is left as ComfyUI made it, and the next prompt succeeds with the clean result.

Memory on CPU: the ballast's tensors are tracked with weak references (alive or not, with the
garbage collector switched off, so only reference counting can free them), and the server
process's RSS is compared with a 256 MiB ballast.
"""

from __future__ import annotations

import gc
import json
import sys

import pytest
import torch
from server_checks import flag_changes, guided_graph, model_flags, process_state, run_ok, saved_latent

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed
from headless.testbed.server import history_error

ADVICE = ("loss_resolution", "taesd", "x0", "window", "released")


def _with_oom(g: dict, fail_on_call: int = 2, ballast_mib: int = 64) -> dict:
    """Put SGTestOOMLoss between the chain and the sampler."""
    g["oom"] = {"class_type": "SGTestOOMLoss", "inputs": {"losses": g["run"]["inputs"]["losses"],
                                                          "fail_on_call": fail_on_call, "ballast_mib": ballast_mib}}
    g["run"]["inputs"]["losses"] = G.link("oom")
    return g


def _witnesses() -> list:
    """The stand-in's weak references, from the module ComfyUI loaded it as."""
    import nodes

    return sys.modules[nodes.NODE_CLASS_MAPPINGS["SGTestOOMLoss"].__module__]._OOM_WITNESSES


@pytest.mark.parametrize("mode", ["x0", "xt"])
def test_oom_gives_the_advice_frees_the_graph_at_once_and_the_next_prompt_runs(comfy, comfy_base, tiny_models, mode):
    import comfy.model_management as mm

    samp = G.sampling(steps=3, seed=9)
    clean_graph = guided_graph(tiny_models, {"mode": mode}, samp, f"oom_clean_{mode}", terms=("mse",))
    comfy.run(clean_graph)
    clean = comfy.output("run")["samples"].clone()
    unet = next(lm.model.model for lm in mm.current_loaded_models if type(lm.model.model).__name__ == "BaseModel")
    tensors = dict(unet.named_parameters())

    g = _with_oom(guided_graph(tiny_models, {"mode": mode}, samp, f"oom_{mode}", terms=("mse",)), ballast_mib=64)
    outputs_before = sorted(p.name for p in (comfy_base / "output").iterdir())
    grad_before = torch.is_grad_enabled()
    gc.collect()
    gc.disable()  # only reference counting may free the failed evaluation's tensors
    try:
        with pytest.raises(PromptFailed) as err:
            comfy.run(g)
        alive = sum(1 for w in _witnesses() if w() is not None)
    finally:
        gc.enable()
    text = str(err.value)
    assert all(word in text for word in ADVICE), text
    assert len(_witnesses()) == 3, "the stand-in did not fail where it should"
    assert alive == 0, f"{alive} of the failed evaluation's tensors (decoded batch, graph, 64 MiB ballast) still alive"
    assert sorted(p.name for p in (comfy_base / "output").iterdir()) == outputs_before, "a failed prompt wrote output"
    after = dict(unet.named_parameters())
    assert all(after[n] is p and p.is_inference() for n, p in tensors.items()), "the shared model was modified"
    assert torch.is_grad_enabled() == grad_before and not torch.is_inference_mode_enabled()

    comfy.run(clean_graph | {"save": {**clean_graph["save"], "inputs": {**clean_graph["save"]["inputs"],
                                                                       "filename_prefix": f"oom_next_{mode}"}}})
    cached = next(d["nodes"] for e, d in comfy.executor.status_messages if e == "execution_cached")
    assert "run" not in cached, "the sampler must run again, not come from the cache"
    assert torch.equal(comfy.output("run")["samples"], clean), "the prompt after the OOM differs from the clean run"


@pytest.mark.slow
def test_oom_on_the_server_reports_the_advice_and_gives_the_memory_back(comfy_server, comfy_base, tiny_models):
    samp = G.sampling(steps=3, seed=9)
    clean_graph = guided_graph(tiny_models, {"mode": "x0"}, samp, "srv_oom_clean", terms=("mse",))
    clean = saved_latent(comfy_base, run_ok(comfy_server, clean_graph))
    base = process_state(comfy_server, collect=True)
    flags = model_flags(base)

    ballast = 256
    g = _with_oom(guided_graph(tiny_models, {"mode": "x0"}, samp, "srv_oom", terms=("mse",)), ballast_mib=ballast)
    entry = comfy_server.wait(comfy_server.submit(g), timeout=900, poll=0.05)
    message = history_error(entry) or ""
    assert entry["status"]["status_str"] == "error" and all(w in message for w in ADVICE), message
    assert "run" not in entry.get("outputs", {}) and "save" not in entry.get("outputs", {})

    after = process_state(comfy_server, collect=True)
    figures = {"ballast_mib": ballast, "rss_before_mib": base["after_gc"]["rss_mib"],
               "rss_after_failure_mib": after["rss_mib"], "rss_after_failure_gc_mib": after["after_gc"]["rss_mib"],
               "witnesses_alive": after["oom_witnesses"], "witnesses_alive_after_gc": after["after_gc"]["oom_witnesses"]}
    print(f"\nOOM on the server: {json.dumps(figures)}")
    assert figures["witnesses_alive"] == 0, figures
    assert figures["rss_after_failure_mib"] - figures["rss_before_mib"] < ballast / 4, figures
    assert not flag_changes(flags, model_flags(after))

    again = saved_latent(comfy_base, run_ok(comfy_server, {**clean_graph, "save": {
        "class_type": "SaveLatent", "inputs": {"samples": G.link("run"), "filename_prefix": "srv_oom_next"}}}))
    assert torch.equal(again, clean)
