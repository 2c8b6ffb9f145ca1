"""A short twin of benchmarks/bench_queue.py on the session's server: a mixed queue of guided
prompts all completes without the server's memory climbing, and decoder copies of VAEs that
ComfyUI dropped are released (one new VAE object per prompt, counted inside the server)."""

from __future__ import annotations

import json
import shutil

import pytest
from server_checks import process_state

from headless.testbed import graphs as G

pytestmark = pytest.mark.slow

PROMPTS = 8
VAES = 3


def test_mixed_queue_completes_with_flat_memory(comfy_server, tiny_models):
    """The same mixed prompts twice: the first pass warms up (each configuration's first run raises the
    allocator's high-water mark once), the second must not climb."""
    with comfy_server.events() as ev:
        ids = [comfy_server.submit(G.queue_prompt(tiny_models, i % PROMPTS, steps=1), ev.client_id)
               for i in range(2 * PROMPTS)]
        rss = []
        for pid in ids:
            ev.wait_for(lambda k, d, p=pid: k in ("execution_success", "execution_error", "execution_interrupted")
                        and isinstance(d, dict) and d.get("prompt_id") == p, timeout=1800)
            rss.append(comfy_server.rss_mib())
    statuses = [comfy_server.wait(pid, timeout=60)["status"]["status_str"] for pid in ids]
    print(f"\nqueue of {PROMPTS} prompts, twice: {statuses}; RSS (MiB) {[round(r) for r in rss]}")
    assert statuses == ["success"] * (2 * PROMPTS)
    measured = rss[PROMPTS:]
    growth = (measured[-1] - measured[0]) / (len(measured) - 1)
    # Generous (the benchmark's target is < 1 MiB per prompt over 100): a leaked decoded batch,
    # graph or loss network per prompt would be tens of MiB.
    assert growth < 16.0, rss


def test_decoder_copies_of_dropped_vaes_are_released(comfy_server, comfy_base, tiny_models):
    rows = []
    for i in range(VAES):
        name = f"sg_suite_vae_{i}.safetensors"
        shutil.copy(comfy_base / "models" / "vae" / tiny_models["kl_vae"], comfy_base / "models" / "vae" / name)
        entry = comfy_server.wait(comfy_server.submit(G.queue_prompt(tiny_models, 2 * i, steps=1, vae_name=name)),
                                  timeout=1800, poll=0.1)
        assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:2000]
        s = process_state(comfy_server)
        rows.append((s["decoders"]["cached"], s["decoders"]["live"]))
    print(f"\ndecoder copies (cache entries, live) after each of {VAES} VAEs: {rows}")
    assert all(cached <= 2 and live <= 2 for cached, live in rows), rows
