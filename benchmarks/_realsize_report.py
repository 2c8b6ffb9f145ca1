"""bench_realsize.py's report: Markdown tables, the target verdicts and the result file's text.

Pure formatting of the result dict the measuring script builds; nothing here runs a model.
"""

from __future__ import annotations

from _realsize_configs import COMPONENT_ORDER, CONFIGS, GIB, PUBLISHED, loss_side


def _g(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:,.0f}"


def main_table(t: dict, cuda: bool) -> str:
    rows = t["rows"]
    plain = rows[0]
    head = ["config", "median s", "min s", "max s", "x plain", "FLOP floor x", "x / floor", "median CPU s",
            "x plain (CPU)", "UNet evals (guided)", "GFLOP/run", "peak RSS GiB", "peak RSS - plain MiB"]
    if cuda:
        head += ["peak CUDA alloc GiB", "alloc - plain MiB", "peak reserved GiB"]
    elif any("memory_pass" in r for r in rows):
        head += ["memory pass RSS GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        cells = [r["config"], f"{r['median_s']:.2f}", f"{r['min_s']:.2f}", f"{r['max_s']:.2f}", f"{r['ratio']:.2f}",
                 f"{r['floor']:.2f}" if "floor" in r else "-", f"{r['x_floor']:.2f}" if "x_floor" in r else "-",
                 f"{r['median_cpu_s']:.2f}", f"{r['ratio_cpu']:.2f}", f"{r['unet_calls']} ({r['decoder_calls']})",
                 _g(r.get("flops")), f"{r['peak_rss_bytes'] / GIB:.2f}",
                 f"{(r['peak_rss_bytes'] - plain['peak_rss_bytes']) / 2**20:+.0f}"]
        m = r.get("memory_pass")
        if cuda:
            pm = plain.get("memory_pass")
            cells += [f"{m['cuda_peak'] / GIB:.2f}", f"{(m['cuda_peak'] - pm['cuda_peak']) / 2**20:+.0f}",
                      f"{m['cuda_reserved_peak'] / GIB:.2f}"] if m and pm else ["-", "-", "-"]
        elif any("memory_pass" in x for x in rows):
            cells += [f"{m['rss_peak'] / GIB:.2f}" if m else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flops_table(t: dict) -> str:
    f = t["flops"]
    if not f:
        return ""
    lines = ["| component (one call) | GFLOP | counted |", "|---|---:|---|"]
    for k, v in f.items():
        if isinstance(v, int):
            lines.append(f"| {k} | {v / 1e9:,.1f} | {f['method'].get(k, '')} |")
    return "\n".join(lines)


def profile_table(t: dict, cuda: bool) -> str:
    profs = {n: p for n, p in t["profiles"].items() if "components_cpu_ms" in p}
    if not profs:
        return ""
    names = list(profs)
    unit = "GPU ms" if cuda else "ms"
    head = ["component"] + [f"{n} {unit}" for n in names] + [f"{n} %" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    key = "components_device_ms" if cuda else "components_cpu_ms"
    comps = [c for c in COMPONENT_ORDER if any(profs[n][key].get(c) for n in names)]
    extra = sorted({c for n in names for c in profs[n][key]} - set(COMPONENT_ORDER) - {"final decode fwd"})
    for c in comps + extra:
        vals = [profs[n][key].get(c, 0.0) for n in names]
        tot = [sum(profs[n][key].values()) or 1.0 for n in names]
        lines.append("| " + " | ".join([c] + [f"{v:.1f}" for v in vals] + [f"{100 * v / s:.0f}"
                                                                             for v, s in zip(vals, tot, strict=False)]) + " |")
    lines.append("| **step (wall)** | " + " | ".join(f"{profs[n]['step_s'] * 1e3:.1f}" for n in names)
                 + " | " + " | ".join("" for _ in names) + " |")
    lines.append("| host syncs (item/sync calls) | " + " | ".join(
        str(sum(profs[n]["sync_points"].values())) for n in names) + " | " + " | ".join("" for _ in names) + " |")
    return "\n".join(lines)


def efficiency_table(t: dict, cuda: bool) -> str:
    """Achieved GFLOP/s of each component in the profiled steps (FLOP counts over profiled times).

    When these differ between components, the FLOP floor is not a floor: a configuration whose
    extra work runs faster per FLOP than the plain UNet comes out below it.
    """
    f = t["flops"]
    key = "components_device_ms" if cuda else "components_cpu_ms"
    profs = {n: p for n, p in t["profiles"].items() if key in p and p[key]}
    if not f or not profs:
        return ""
    lines = ["| config | UNet fwd | UNet bwd | decoder fwd+bwd | VGG+CLIP+loss fwd+bwd |", "|---|---:|---:|---:|---:|"]
    for n, p in profs.items():
        ms = p[key]
        spec = CONFIGS[n][1] or {}

        def rate(flops, *parts, ms=ms):
            sec = sum(ms.get(c, 0.0) for c in parts) / 1e3
            return f"{flops / sec / 1e9:,.0f}" if flops and sec > 0 else "-"

        cells = [rate(f["unet_fwd"], "UNet fwd")]
        cells.append(rate(f.get("unet_fwd_bwd", 0) - f["unet_fwd"], "UNet bwd") if spec.get("mode") == "xt" else "-")
        dec = f.get(f"decoder_fwd_bwd[{spec['vae']}]") if spec else None
        cells.append(rate(dec, "decoder fwd", "decoder bwd") if dec else "-")
        loss = f.get(f"loss_fwd_bwd[{loss_side(n, t['size'])}]") if spec else None
        cells.append(rate(loss, "VGG fwd", "VGG bwd", "CLIP fwd", "CLIP bwd", "loss arithmetic") if loss else "-")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling_table(cells: list[dict], cuda: bool) -> str:
    head = ["side", "batch", "plain s", "fast s", "fast x plain", "plain peak", "fast peak", "fast - plain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:"] * len(head)) + "|"]
    for c in cells:
        if c.get("skipped"):
            lines.append(f"| {c['size']} | {c['batch']} | skipped ({c['skipped']}) | | | | | |")
            continue
        p, f = c["rows"][0], c["rows"][1]
        key = "cuda_peak" if cuda else "rss_peak"
        pm, fm = p.get("memory_pass", {}).get(key), f.get("memory_pass", {}).get(key)
        mem = [f"{pm / GIB:.2f} GiB", f"{fm / GIB:.2f} GiB", f"{(fm - pm) / 2**20:+.0f} MiB"] if pm and fm else ["-"] * 3
        lines.append(f"| {c['size']} | {c['batch']} | {p['median_s']:.2f} | {f['median_s']:.2f} | {f['ratio']:.2f} | "
                     + " | ".join(mem) + " |")
    return "\n".join(lines)


def targets(result: dict, cuda: bool) -> list[dict]:
    """The issue's targets: met / not met / not measured, with the figures behind each verdict."""
    out = []
    main = result["main"]
    rows = {r["config"]: r for r in main["rows"]}
    where = f"{'GPU' if cuda else 'CPU'}, SD1.5 {main['size']} px, {main['steps']} steps"
    gpu512 = cuda and main["size"] == 512 and main["family"] == "sd15"

    def add(name: str, verdict: str | None, detail: str) -> None:
        out.append({"target": name, "verdict": verdict or "not measured", "detail": detail})

    fast, plain = rows.get("fast"), rows.get("plain")
    if fast:
        v = "met" if fast["ratio"] <= 1.5 else "not met"
        add("fast <= 1.5x plain wall time (GPU, SD1.5 512)", v if gpu512 else None,
            f"fast {fast['ratio']:.2f}x plain ({where})" + ("" if gpu512 else "; the target is for a GPU at 512 px"))
        if cuda and fast.get("memory_pass") and plain.get("memory_pass"):
            d = fast["memory_pass"]["cuda_peak"] - plain["memory_pass"]["cuda_peak"]
            add("fast peak memory <= plain + 2 GB (GPU, SD1.5 512)", ("met" if d <= 2e9 else "not met") if gpu512 else None,
                f"peak CUDA allocated {fast['memory_pass']['cuda_peak'] / GIB:.2f} GiB vs plain "
                f"{plain['memory_pass']['cuda_peak'] / GIB:.2f} GiB ({d / 1e9:+.2f} GB)")
        else:
            d = fast["peak_rss_bytes"] - plain["peak_rss_bytes"]
            add("fast peak memory <= plain + 2 GB (GPU, SD1.5 512)", None,
                f"CPU peak RSS {d / 1e9:+.2f} GB over plain ({where}); the target is GPU memory")
    for n in ("x0-vae", "xt-taesd"):
        r = rows.get(n)
        if r and "x_floor" in r:
            add(f"{n} within 1.15x of its FLOP floor", "met" if r["x_floor"] <= 1.15 else "not met",
                f"{r['ratio']:.2f}x plain vs floor {r['floor']:.2f}x: {r['x_floor']:.2f}x the floor ({where})")
        elif r:
            add(f"{n} within 1.15x of its FLOP floor", None, "FLOPs not counted")
    sdxl = result.get("sdxl")
    sfast = next((r for r in sdxl["rows"] if r["config"] == "fast"), None) if sdxl else None
    if sfast and cuda and sfast.get("memory_pass"):
        m = sfast["memory_pass"]
        v = "met" if m["cuda_reserved_peak"] + GIB <= 24 * GIB else "not met"
        add("SDXL 1024 fast fits a 24 GB GPU", v if sdxl["size"] == 1024 else None,
            f"peak allocated {m['cuda_peak'] / GIB:.2f} GiB, reserved {m['cuda_reserved_peak'] / GIB:.2f} GiB "
            f"(+~1 GiB CUDA context must stay <= 24 GiB) at {sdxl['size']} px")
    else:
        add("SDXL 1024 fast fits a 24 GB GPU", None, "needs --gpu")
    for n, (paper, secs, gb) in PUBLISHED.items():
        r = rows.get(n)
        if not r:
            continue
        ours = (f"{r['memory_pass']['cuda_peak'] / 1e9:.1f} GB allocated" if cuda and r.get("memory_pass")
                else f"CPU, peak RSS {r['peak_rss_bytes'] / 1e9:.1f} GB")
        add(f"{n} vs {paper} (published {gb} GB, {secs} s for SD at 512)", None if not gpu512 else "reported",
            f"ours: {ours}, {r['median_s']:.1f} s ({where}; different GPU and step count from the paper)")
    return out


def markdown(result: dict) -> str:
    a, m, cuda = result["settings"], result["machine"], result["cuda"]
    dev = m.get("gpu") or m.get("cpu_model") or m["machine"]
    main = result["main"]
    legend = "\n".join(f"- **{r['config']}**: {r['description']}" for r in main["rows"])
    parts = [f"""# Style Guidance at real model sizes ({m['device']}{', dry run' if a['dry_run'] else ''})

Measured {result['timestamp']} with `{result['command']}`; whole run {result['total_s']:.0f} s.

- Machine: {m['platform']}, {dev}, {m['cpu_count']} CPUs ({m['cpu_affinity']} usable), \
{m.get('memory_bytes', 0) / GIB:.0f} GiB RAM{f", GPU {m['gpu']} ({m['gpu_memory_bytes'] / GIB:.0f} GiB), CUDA {m['cuda']}" if cuda else ''}; \
torch {m['torch']} ({m['torch_threads']} thread{'s' if m['torch_threads'] != 1 else ''}), ComfyUI {m['comfyui']}, \
pack {result['pack'].get('style_guidance_version', '?')} (git {result['pack'].get('git', '?')}). \
Load average (1 min) {result['loadavg_before'][0]:.1f} before, {result['loadavg_after'][0]:.1f} after.
- Models: real-size architectures, random weights (fp16 files, built by ComfyUI's own classes, loaded by its \
loaders): SD1.5 UNet (860M params), SD VAE (84M), TAESD (1.2M decoder), VGG19 features (20M), open_clip ViT-B-32 \
vision tower (88M){', SDXL UNet (2.6B) and TAESDXL' if result.get('sdxl') else ''}. Random conditioning of the \
right shape replaces the text encoder (not what is timed).
- Workload: {main['size']}x{main['size']} px, batch {main['batch']}, {main['steps']} steps, cfg {a['cfg']}, \
{a['sampler']}/{a['scheduler']}, denoise {a['denoise']} from the TAESD-encoded content image, seed per run; guided \
configurations chain all five losses (content MSE, VGG relu4_2, ZeCon 256 patches, CLIP style 8 cutouts, Gram) at \
scale {a['scale']}. Each prompt ends with a TAESD decode and a preview in every configuration.
- Timing: each prompt runs once as a warm-up ({a['warmup_steps']} step: loads models, builds loss networks and \
reference features, all cached by ComfyUI), then {main['repeats']} timed runs per configuration, interleaved \
(round r runs every configuration once, order rotated), in which only the sampler, the decode and the preview \
re-execute. median/min/max: wall time of one prompt run; "x plain": ratio of medians; CPU s: this process's \
user+system time.
- FLOP floor: FlopCounterMode (matmul/conv/attention FLOPs) of each component at this size, counted once on the \
objects ComfyUI built, times the evaluations each configuration makes (the UNet's CFG batch forward per \
evaluation; guided ones add decoder and loss-network forward+backward, and in xt mode the UNet backward; plus the \
final TAESD decode); "FLOP floor x" = that total over plain's; "x / floor" = measured ratio over the floor \
(1.00 = guidance costs exactly its extra arithmetic). "UNet evals (guided)": model evaluations counted in the last \
timed run (guided ones).
- Memory: peak RSS is the process's resident-memory high-water mark during a timed run \
({result['rss_method']}); every model stays loaded, so the difference to plain is what guidance adds."""
             + (" Peak CUDA figures come from a separate pass that unloads every model before each configuration's "
                f"run ({a['memory_steps']} steps) and resets torch.cuda's peak statistics, as a fresh process "
                "running only that workflow would see." if cuda else ""),
             "", "## SD1.5 " + f"{main['size']} px", "", main_table(main, cuda), "", legend]
    parts += ["", "## Targets", "", "| target | verdict | figures |", "|---|---|---|"]
    parts += [f"| {t['target']} | {t['verdict']} | {t['detail']} |" for t in result["targets"]]
    ft = flops_table(main)
    if ft:
        parts += ["", "## FLOP counts per call", "", f"At {main['size']} px, batch {main['batch']} (UNet at the CFG "
                  "batch). `fake`: counted under FakeTensorMode without computing; `real`: counted while running.",
                  "", ft]
    pt = profile_table(main, cuda)
    if pt:
        parts += ["", "## Where a guided step's time goes", "",
                  "torch.profiler over a 1-step prompt of the configuration; the step is the one model evaluation "
                  "(`CFGGuider.__call__`, the guidance hooks included). Components are labelled with "
                  "`record_function` from the benchmark; backward time is attributed to the component whose forward "
                  "op created the autograd node (sequence numbers). 'loss arithmetic': loss terms outside VGG/CLIP "
                  "(Gram, ZeCon, MSE, cutouts), forward and backward; 'guidance step': the engine's normalised update "
                  "and loss bookkeeping; 'other': CFG, hooks, schedule look-ups, resizes and everything else inside "
                  "the evaluation." + (" GPU ms are kernel times." if cuda else ""), "", pt]
        et = efficiency_table(main, cuda)
        if et:
            parts += ["", "Achieved GFLOP/s per component (FLOP counts above over the profiled "
                      + ("kernel" if cuda else "CPU") + " times). Where these differ, the FLOP floor is not a "
                      "floor: guidance work that runs faster per FLOP than the plain UNet lands below it.", "", et]
        for n, p in main["profiles"].items():
            if p.get("top_other_ops_ms"):
                ops = ", ".join(f"{k} {v:.1f} ms" for k, v in p["top_other_ops_ms"].items())
                parts.append(f"\n- {n}: prompt {p['prompt_s']:.2f} s for a {p['step_s']:.2f} s step; "
                             f"sync points {p['sync_points'] or 'none'}; largest 'other'/'guidance step' ops: {ops}")
    if result.get("sdxl"):
        s = result["sdxl"]
        parts += ["", f"## SDXL {s['size']} px", "", f"{s['steps']} steps, batch {s['batch']}, cfg {a['cfg']}; "
                  "TAESDXL for encode/decode.", "", main_table(s, cuda)]
    if result.get("scaling"):
        parts += ["", "## Scaling (SD1.5, plain vs fast)", "",
                  f"{a['scaling_steps']} steps, median of {a['scaling_repeats']} runs after a warm-up; peak memory "
                  "from the memory pass" + (" (CUDA allocated)." if cuda else " (RSS)."), "",
                  scaling_table(result["scaling"], cuda)]
    return "\n".join(parts) + "\n"
