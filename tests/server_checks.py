"""Helpers for the tests that look at a running ComfyUI server: prompts, saved latents, process state."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed
from headless.testbed.server import ComfyServer, history_error, history_messages


def guided_graph(models: dict, opts: dict, samp: dict, prefix: str, terms: tuple[str, ...] = ("mse", "gram"),
                 plain: bool = False, size: int = G.SIZE, batch: int = 1, vae: str = "taesd") -> dict:
    """Content/style pictures, a short loss chain, a guided (or plain) sampler, its latent saved."""
    g = G.base_graph(models, vae=vae, size=size, batch=batch)
    last = G.add_all_losses(g, terms=terms)
    if plain:
        G.add_ksampler(g, "run", samp)
    else:
        G.add_guided_sampler(g, "run", last, G.guidance_options(**opts), samp)
    g["save"] = {"class_type": "SaveLatent", "inputs": {"samples": G.link("run"), "filename_prefix": prefix}}
    return g


def saved_latent(base: Path, entry: dict, node: str = "save") -> torch.Tensor:
    """The latent a SaveLatent node of a finished prompt wrote."""
    from safetensors.torch import load_file

    item = entry["outputs"][node]["latents"][0]
    return load_file(str(base / "output" / item["subfolder"] / item["filename"]))["latent_tensor"]


def cached_nodes(entry: dict) -> list[str]:
    """The nodes ComfyUI took from its cache for this prompt."""
    return next((d.get("nodes", []) for e, d in history_messages(entry) if e == "execution_cached"), [])


def run_ok(server: ComfyServer, prompt: dict, client_id: str = "tests", timeout: float = 900.0) -> dict:
    """Run a prompt to success (PromptFailed with the server's error otherwise)."""
    entry = server.wait(server.submit(prompt, client_id), timeout, poll=0.05)
    if entry.get("status", {}).get("status_str") != "success":
        raise PromptFailed(f"prompt failed: {history_error(entry) or json.dumps(entry.get('status'))[:3000]}")
    return entry


def process_state(server: ComfyServer, collect: bool = False, tag: str = "") -> dict:
    """What the server process holds now (SGTestProcessState): RSS, loaded models' flags, decoder copies."""
    entry = run_ok(server, {"state": {"class_type": "SGTestProcessState", "inputs": {"collect": collect, "tag": tag}}})
    return json.loads(entry["outputs"]["state"]["text"][0])


def flag_changes(before: dict, after: dict) -> list[str]:
    """What guidance left wrong between two ``model_flags`` results (empty: nothing).

    ComfyUI's server unloads models whose cached outputs a later prompt dropped only at its next
    garbage-collection pass (every 10 s), so which models are loaded, and how many instances of
    a class, when a state prompt runs depends on timing. So: a class loaded in both states must
    show the same kinds of instances; and every instance must be what guidance leaves behind:
    ComfyUI's own weights still inference tensors, the pack's copies and loss networks (ordinary
    tensors, made once) with no parameter requiring grad.
    """
    problems = []
    for cls in sorted(set(before) & set(after)):
        if set(before[cls]) != set(after[cls]):
            problems.append(f"{cls}: {before[cls]} before, {after[cls]} after")
    for state in (before, after):
        for cls, rows in state.items():
            for params, requires_grad, not_inference in set(rows):
                if cls.startswith("comfy:") and not_inference:
                    problems.append(f"{cls}: {not_inference} of {params} weights are no longer inference tensors")
                if not cls.startswith("comfy:") and requires_grad:
                    problems.append(f"{cls}: {requires_grad} of {params} parameters require grad")
    return problems


def model_flags(state: dict) -> dict[str, list[tuple[int, int, int]]]:
    """Per loaded model class ("comfy:<class>" for ComfyUI's own, "pack:<class>" for the pack's copies and
    loss networks): sorted (parameters, requires_grad, not_inference) of each instance."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for m in state["models"]:
        key = ("comfy:" if m.get("comfy") else "pack:") + m["class"]
        out.setdefault(key, []).append((m["parameters"], m["requires_grad"], m["not_inference"]))
    return {k: sorted(v) for k, v in out.items()}
