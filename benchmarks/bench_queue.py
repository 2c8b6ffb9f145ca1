"""A long queue against one real ComfyUI server: all prompts complete, memory stays flat, and
decoder copies of VAEs ComfyUI has dropped are released.

1. ``--prompts`` (100) mixed guided prompts (x0/xt, five loss chains, 64-128 px, batch 1-3, loss
   resolutions, some with recurrence; ``headless.testbed.graphs.queue_prompt``) are queued at once. The
   server's RSS is read from /proc when each prompt's ``execution_success`` arrives on the
   websocket; the growth per prompt after ``--warmup`` prompts is the slope of a least-squares
   line (target: under 1 MiB per prompt).
2. ``--vaes`` (10) different VAE files (copies of the tiny KL VAE under other names, each its own
   ComfyUI VAE object) decode a guided prompt in turn; after each, the stand-in node
   SGTestProcessState reports the entries of the pack's decoder-copy cache and the live
   ``DecoderCopy`` objects.

    .venv/bin/python benchmarks/bench_queue.py                      # 100 prompts, 10 VAEs
    .venv/bin/python benchmarks/bench_queue.py --prompts 20 --vaes 4 --no-write

Writes results/cpu_queue.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import REPO_ROOT, RESULTS_DIR, comfy_version, command_line, machine_info, pack_info, setup_comfy


def slope(ys: list[float]) -> float:
    """Least-squares growth per step of a series (0 for fewer than two points)."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def state(server) -> dict:
    from headless.testbed import graphs as G
    from headless.testbed.server import history_error

    entry = server.wait(server.submit(G.state_prompt()), timeout=120, poll=0.05)
    if entry["status"]["status_str"] != "success":
        raise RuntimeError(f"SGTestProcessState failed: {history_error(entry)}")
    return json.loads(entry["outputs"]["state"]["text"][0])


def run_queue(server, models: dict, n: int, steps: int) -> dict:
    from headless.testbed import graphs as G

    with server.events() as ev:
        start = time.perf_counter()
        ids = [server.submit(G.queue_prompt(models, i, steps=steps), ev.client_id) for i in range(n)]
        rss, done, failed = [], [], []
        for pid in ids:
            _, t, data = ev.wait_for(lambda k, d, p=pid: k in ("execution_success", "execution_error",
                                                               "execution_interrupted")
                                     and isinstance(d, dict) and d.get("prompt_id") == p, timeout=3600)
            rss.append(server.rss_mib())
            done.append(t - start)
            if data is None or ev.of_prompt(pid, "execution_error") or ev.of_prompt(pid, "execution_interrupted"):
                failed.append(pid)
        entries = [server.wait(pid, timeout=60) for pid in ids]
    ok = sum(e["status"]["status_str"] == "success" for e in entries)
    return {"prompts": n, "completed": ok, "failed": len(failed), "seconds": done[-1], "rss_mib": rss,
            "done_s": done}


def run_vaes(server, models: dict, k: int, models_dir: Path) -> list[dict]:
    from headless.testbed import graphs as G

    src = models_dir / "vae" / models["kl_vae"]
    rows = []
    for i in range(k):
        name = f"sg_queue_vae_{i}.safetensors"
        shutil.copy(src, models_dir / "vae" / name)
        g = G.queue_prompt(models, 2 * i, steps=1, vae_name=name)  # even i: x0 mode
        entry = server.wait(server.submit(g), timeout=1800, poll=0.1)
        s = state(server)
        rows.append({"vae": name, "status": entry["status"]["status_str"], "decoders_cached": s["decoders"]["cached"],
                     "decoders_live": s["decoders"]["live"], "rss_mib": s["rss_mib"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--vaes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server (default 1)")
    ap.add_argument("--out", default="cpu_queue")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the .md from a result JSON of this script")
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads(Path(args.render).read_text())
        result.update(rss_steps(result))
        Path(args.render).write_text(json.dumps(result, indent=1))
        Path(args.render).with_suffix(".md").write_text(report(result))
        print(report(result))
        return 0

    from headless.testbed.server import ComfyServer
    from headless.testbed.standins import loss_nets, names, suite_models

    base = Path(tempfile.mkdtemp(prefix="sg_bench_queue_"))
    try:
        comfy_root, models = setup_comfy(base, gpu=False, build_models=lambda d: (suite_models.build_all(d), {
            "ckpt": names.TINY_CKPT, "kl_vae": names.TINY_KL_VAE, "vgg": loss_nets.TINY_VGG,
            "open_clip": loss_nets.TINY_OPENCLIP, "open_clip_arch": loss_nets.TINY_OPENCLIP_ARCH})[1], who="bench_queue")
        server = ComfyServer(comfy_root, base, base / "server.log", extra_env={"OMP_NUM_THREADS": str(args.threads)})
        try:
            server.wait_ready()
            rss_start = server.rss_mib()
            load_before = os.getloadavg()[0]
            queue = run_queue(server, models, args.prompts, args.steps)
            vaes = run_vaes(server, models, args.vaes, base / "models")
            alive = server.proc.poll() is None
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
        measured = queue["rss_mib"][args.warmup:]
        per_prompt = slope(measured)
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command_line(__file__, argv),
            "machine": machine_info(comfy_root, False), "comfyui": comfy_version(comfy_root), "pack": pack_info(),
            "server_threads": args.threads, "steps": args.steps, "warmup": args.warmup,
            "rss_start_mib": rss_start, "queue": queue,
            "rss_per_prompt_mib": per_prompt, "rss_growth_after_warmup_mib": measured[-1] - measured[0] if measured else 0,
            "seconds_per_prompt": queue["seconds"] / max(1, queue["prompts"]),
            "vaes": vaes, "max_decoders_live": max((v["decoders_live"] for v in vaes), default=0),
            "max_decoders_cached": max((v["decoders_cached"] for v in vaes), default=0),
            "server_alive_at_end": alive, "load_before": load_before, "load_after": load_after,
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result.update(rss_steps(result))
    text = report(result)
    print(text)
    if not args.no_write:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"{args.out}.json").write_text(json.dumps(result, indent=1))
        (RESULTS_DIR / f"{args.out}.md").write_text(text)
    ok = (result["queue"]["completed"] == args.prompts and all(v["status"] == "success" for v in vaes)
          and result["max_decoders_live"] <= 2)
    return 0 if ok else 1


def rss_steps(r: dict) -> dict:
    """Growth after warm-up split into its parts: the slope over the second half of the queue and the
    largest single jump (the allocator's high-water mark rising when a larger configuration first runs)."""
    rss, w = r["queue"]["rss_mib"], r["warmup"]
    half = len(rss) // 2
    marks = sorted({min(len(rss), k) for k in (w, len(rss) // 4, half, 3 * len(rss) // 4, len(rss))} - {0})
    return {"slope_second_half_mib": slope(rss[half:]), "second_half_from": half,
            "rss_at_prompt": {k: rss[k - 1] for k in marks}}


def report(r: dict) -> str:
    q = r["queue"]
    parts = rss_steps(r)
    lines = [
        "# A long queue on one ComfyUI server (cpu)", "",
        f"Measured {r['when']} with `{r['command']}`.", "",
        f"- Machine: {r['machine'].get('platform', '')}, {r['machine'].get('cpu_model', '')}, "
        f"{r['machine'].get('cpu_affinity')} CPUs usable, torch {r['machine'].get('torch', '')}; server torch threads "
        f"{r['server_threads']}; ComfyUI {r['comfyui']}; pack {r['pack'].get('style_guidance_version', '')} "
        f"(git {r['pack'].get('git', '')}). Load average (1 min) {r['load_before']:.1f} before, {r['load_after']:.1f} after.",
        "- Workload: `headless.testbed.graphs.queue_prompt(i)`: tiny SD1.5-detectable UNet, x0 and xt alternating, one of five "
        "loss chains (mse; mse+gram; vgg+gram; zecon+clip; all five), 64/96/128 px, batch 1-3, loss_resolution "
        f"0/32/64, recurrence 2 in one prompt of five, {r['steps']} steps; all queued at once.",
        "- RSS: the server process's VmRSS when each prompt's `execution_success` arrives; growth per prompt = "
        f"least-squares slope after {r['warmup']} warm-up prompts.", "",
        "| figure | value |", "|---|---:|",
        f"| prompts completed | {q['completed']} / {q['prompts']} |",
        f"| wall time | {q['seconds']:.0f} s ({r['seconds_per_prompt']:.1f} s per prompt) |",
        f"| RSS at start / after warm-up / at end | {r['rss_start_mib']:.0f} / {q['rss_mib'][min(r['warmup'], len(q['rss_mib']) - 1)]:.0f} / {q['rss_mib'][-1]:.0f} MiB |",
        f"| RSS growth per prompt after warm-up (slope from prompt {r['warmup']}) | {r['rss_per_prompt_mib']:+.3f} MiB |",
        f"| RSS after prompt {' / '.join(str(k) for k in parts['rss_at_prompt'])} | "
        f"{' / '.join(f'{v:.0f}' for v in parts['rss_at_prompt'].values())} MiB |",
        f"| RSS growth per prompt over the second half (from prompt {parts['second_half_from']}) | {parts['slope_second_half_mib']:+.3f} MiB |",
        f"| RSS peak over the queue | {max(q['rss_mib']):.0f} MiB |",
        f"| VAEs loaded in turn | {len(r['vaes'])} |",
        f"| decoder copies alive (most at any time) | {r['max_decoders_live']} |",
        f"| decoder-cache entries (most at any time) | {r['max_decoders_cached']} |",
        f"| server alive at the end | {r['server_alive_at_end']} |", "",
        "The slope after warm-up is the allocator's high-water mark rising in steps when a larger "
        "configuration (size x batch x chain) first runs, not a steady per-prompt climb: the second-half slope "
        "and the series in the JSON (`queue.rss_mib`) show it.", "",
        "Decoder copies after each VAE (a new VAE file per prompt, so ComfyUI drops the previous VAE object):", "",
        "| VAE | status | cache entries | live DecoderCopy | RSS MiB |", "|---|---|---:|---:|---:|",
        *[f"| {v['vae']} | {v['status']} | {v['decoders_cached']} | {v['decoders_live']} | {v['rss_mib']:.0f} |"
          for v in r["vaes"]],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main())
