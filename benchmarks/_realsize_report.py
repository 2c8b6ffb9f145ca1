"""bench_realsize.py's report: Markdown tables, the target verdicts and the result file's text.

Pure formatting of the result dict the measuring script builds; nothing here runs a model.
"""

from __future__ import annotations

from _realsize_configs import COMPONENT_ORDER, CONFIGS, GIB, PART_ORDER, PUBLISHED, guided_key

FAST_FLOOR_MAX = 1.5  # the fast preset's FLOP floor at SD1.5 512 px, x plain sampling
X_FLOOR_MAX = 1.15  # measured ratio over the FLOP floor


def _g(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:,.0f}"


def _gf(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:,.1f}"


def tables(result: dict) -> list[dict]:
    """The SD1.5 tables, one per size (older result files hold one, as 'main')."""
    return result.get("tables") or [result["main"]]


def main_table(t: dict, cuda: bool) -> str:
    rows = t["rows"]
    plain = rows[0]
    head = ["config", "median s", "min s", "max s", "x plain", "FLOP floor x", "x / floor", "median CPU s",
            "x plain (CPU)", "x / floor (CPU)", "model evals (guided)", "GFLOP/run", "peak RSS GiB",
            "peak RSS - plain MiB"]
    if cuda:
        head += ["peak CUDA alloc GiB", "alloc - plain MiB", "peak reserved GiB"]
    elif any("memory_pass" in r for r in rows):
        head += ["memory pass RSS GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    def num(r: dict, key: str) -> str:
        return f"{r[key]:.2f}" if key in r else "-"

    for r in rows:
        timed = "median_s" in r
        evals = (f"{r.get('model_evals', r.get('unet_calls'))} ({r.get('guided_calls', r.get('decoder_calls', 0))})"
                 if timed else f"{r['evaluations_planned']} ({r['guided_planned']}) planned")
        cells = [r["config"]] + [num(r, k) for k in ("median_s", "min_s", "max_s", "ratio", "floor", "x_floor",
                                                     "median_cpu_s", "ratio_cpu", "x_floor_cpu")]
        cells += [evals, _g(r.get("flops")), f"{r['peak_rss_bytes'] / GIB:.2f}" if timed else "-",
                  f"{(r['peak_rss_bytes'] - plain['peak_rss_bytes']) / 2**20:+.0f}" if timed else "-"]
        m = r.get("memory_pass")
        if cuda:
            pm = plain.get("memory_pass")
            cells += [f"{m['cuda_peak'] / GIB:.2f}", f"{(m['cuda_peak'] - pm['cuda_peak']) / 2**20:+.0f}",
                      f"{m['cuda_reserved_peak'] / GIB:.2f}"] if m and pm else ["-", "-", "-"]
        elif any("memory_pass" in x for x in rows):
            cells += [f"{m['rss_peak'] / GIB:.2f}" if m else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ordered_parts(groups: list[dict]) -> list[str]:
    """Every part name of these guided evaluations, in PART_ORDER (terms in the order they were counted)."""
    seen: list[str] = []
    for g in groups:
        for k in g["parts"]:
            if k not in seen:
                seen.append(k)

    def rank(k: str) -> tuple[int, int]:
        base = "term bwd" if k.startswith("term bwd: ") else k
        return (PART_ORDER.index(base) if base in PART_ORDER else len(PART_ORDER), seen.index(k))

    return sorted(seen, key=rank)


def work_table(t: dict) -> str:
    """The work of one guided evaluation, per component and per term (GFLOP), for each guided configuration."""
    f = t.get("flops")
    if not f or not f.get("guided"):
        return ""
    names = [r["config"] for r in t["rows"] if r["settings"] and guided_key(r["config"], t["size"]) in f["guided"]]
    if not names:
        return ""
    groups = {n: f["guided"][guided_key(n, t["size"])] for n in names}
    xt = {n: (CONFIGS[n][1] or {}).get("mode") == "xt" for n in names}
    head = ["one guided evaluation"] + [f"{n} GFLOP" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(names)) + "|"]

    def row(label: str, values: list) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("UNet fwd at the CFG batch (every evaluation, plain too)", [_gf(f["unet_fwd"]) for _ in names])
    if any(xt.values()):
        row("UNet bwd to x_t (xt mode)", [_gf(f.get("unet_bwd")) if xt[n] else "-" for n in names])
    for part in _ordered_parts(list(groups.values())):
        if part.startswith("per run"):
            continue
        label = part.replace("term bwd: ", "backward of term ") if part.startswith("term bwd: ") else part
        row(label, [_gf(groups[n]["parts"].get(part)) if part in groups[n]["parts"] else "-" for n in names])
    extra = {n: groups[n]["per_eval"] + (f.get("unet_bwd", 0) if xt[n] else 0) for n in names}
    row("**guidance work per guided evaluation**", [f"**{_gf(extra[n])}**" for n in names])
    row("**guided / plain evaluation**", [f"**{(f['unet_fwd'] + extra[n]) / f['unet_fwd']:.2f}x**" for n in names])
    if any(groups[n]["per_run"] for n in names):
        row("once per run: reference features", [_gf(groups[n]["per_run"]) if groups[n]["per_run"] else "-"
                                                 for n in names])
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


def term_table(t: dict, cuda: bool) -> str:
    """Each term's backward in the profiled steps: time, FLOPs, achieved rate."""
    key = "term_bwd_device_ms" if cuda else "term_bwd_cpu_ms"
    f = t.get("flops") or {}
    profs = {n: p for n, p in t["profiles"].items() if p.get(key)}
    if not profs:
        return ""
    lines = ["| config | term | backward " + ("GPU ms" if cuda else "ms") + " | GFLOP | GFLOP/s |",
             "|---|---|---:|---:|---:|"]
    for n, p in profs.items():
        parts = (f.get("guided", {}).get(guided_key(n, t["size"])) or {}).get("parts", {})
        for term, ms in p[key].items():
            fl = parts.get(f"term bwd: {term}")
            rate = f"{fl / (ms / 1e3) / 1e9:,.0f}" if fl and ms > 0 else "-"
            lines.append(f"| {n} | {term} | {ms:.1f} | {_gf(fl)} | {rate} |")
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
    lines = ["| config | UNet fwd | UNet bwd | decoder fwd+bwd | VGG+CLIP+loss fwd+bwd | model features fwd+bwd |",
             "|---|---:|---:|---:|---:|---:|"]
    for n, p in profs.items():
        ms = p[key]
        spec = CONFIGS[n][1] or {}
        parts = (f["guided"].get(guided_key(n, t["size"])) or {}).get("parts", {}) if spec else {}

        def rate(flops, *comps, ms=ms):
            sec = sum(ms.get(c, 0.0) for c in comps) / 1e3
            return f"{flops / sec / 1e9:,.0f}" if flops and sec > 0 else "-"

        # The benchmark's chains are all image terms or all latent terms: term backwards belong to one group.
        latent = "model passes fwd" in parts
        dec = sum(v for k, v in parts.items() if k.startswith("decoder"))
        bwd = sum(v for k, v in parts.items() if k.startswith("term bwd"))
        chain = sum(v for k, v in parts.items() if k.startswith("chain fwd"))
        cells = [rate(f["unet_fwd"], "UNet fwd")]
        cells.append(rate(f.get("unet_bwd", 0), "UNet bwd") if spec.get("mode") == "xt" else "-")
        cells.append(rate(dec, "decoder fwd", "decoder bwd"))
        cells.append(rate(0 if latent else chain + bwd, "VGG fwd", "VGG bwd", "CLIP fwd", "CLIP bwd", "loss arithmetic"))
        cells.append(rate(parts.get("model passes fwd", 0) + bwd if latent else 0, "model features fwd",
                          "model features bwd"))
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
    """The issues' targets: met / not met / not measured, with the figures behind each verdict."""
    out = []
    ts = tables(result)
    at512 = next((t for t in ts if t["size"] == 512 and t["family"] == "sd15"), None)
    main = at512 or ts[-1]
    dev = "GPU" if cuda else "CPU"

    def where(t: dict) -> str:
        return f"{dev}, SD1.5 {t['size']} px, {t['steps']} steps"

    def add(name: str, verdict: str | None, detail: str) -> None:
        out.append({"target": name, "verdict": verdict or "not measured", "detail": detail})

    # The fast preset at 512 px: FLOP floor, and the measured ratio against it (any device).
    fast = next((r for r in at512["rows"] if r["config"] == "fast"), None) if at512 else None
    if fast and "floor" in fast:
        wf = fast.get("flops_workflow_steps")
        extra = (f"; at the workflow's {wf['steps']} steps {wf['floor']:.2f}x" if wf else "")
        add(f"fast FLOP floor <= {FAST_FLOOR_MAX}x plain (SD1.5 512 px)",
            "met" if fast["floor"] <= FAST_FLOOR_MAX and (not wf or wf["floor"] <= FAST_FLOOR_MAX) else "not met",
            f"floor {fast['floor']:.2f}x at {at512['steps']} steps{extra}")
        if "x_floor" in fast:
            add(f"fast measured ratio within {X_FLOOR_MAX}x of its FLOP floor (SD1.5 512 px)",
                "met" if fast["x_floor"] <= X_FLOOR_MAX else "not met",
                f"{fast['ratio']:.2f}x plain (wall) vs floor {fast['floor']:.2f}x: {fast['x_floor']:.2f}x the floor; "
                f"CPU time {fast['ratio_cpu']:.2f}x plain: {fast['x_floor_cpu']:.2f}x the floor ({where(at512)})")
        else:
            add(f"fast measured ratio within {X_FLOOR_MAX}x of its FLOP floor (SD1.5 512 px)", None, "not timed")
    else:
        add(f"fast FLOP floor <= {FAST_FLOOR_MAX}x plain (SD1.5 512 px)", None, "needs fast at 512 px with FLOP counts")
        add(f"fast measured ratio within {X_FLOOR_MAX}x of its FLOP floor (SD1.5 512 px)", None,
            "needs fast at 512 px with FLOP counts")
    for t in ts:
        if t is at512:
            continue
        r = next((x for x in t["rows"] if x["config"] == "fast"), None)
        if r and "x_floor" in r:
            add(f"fast at {t['size']} px (for comparison)", "reported",
                f"{r['ratio']:.2f}x plain vs floor {r['floor']:.2f}x: {r['x_floor']:.2f}x the floor "
                f"(CPU time {r['x_floor_cpu']:.2f}x) ({where(t)})")
    rows = {r["config"]: r for r in main["rows"]}
    gpu512 = cuda and at512 is not None
    fast, plain = rows.get("fast"), rows.get("plain")
    if fast and "ratio" in fast:
        v = "met" if fast["ratio"] <= FAST_FLOOR_MAX else "not met"
        add("fast <= 1.5x plain wall time (GPU, SD1.5 512)", v if gpu512 else None,
            f"fast {fast['ratio']:.2f}x plain ({where(main)})" + ("" if gpu512 else "; the target is for a GPU at 512 px"))
        if cuda and fast.get("memory_pass") and plain.get("memory_pass"):
            d = fast["memory_pass"]["cuda_peak"] - plain["memory_pass"]["cuda_peak"]
            add("fast peak memory <= plain + 2 GB (GPU, SD1.5 512)", ("met" if d <= 2e9 else "not met") if gpu512 else None,
                f"peak CUDA allocated {fast['memory_pass']['cuda_peak'] / GIB:.2f} GiB vs plain "
                f"{plain['memory_pass']['cuda_peak'] / GIB:.2f} GiB ({d / 1e9:+.2f} GB)")
        else:
            d = fast["peak_rss_bytes"] - plain["peak_rss_bytes"]
            add("fast peak memory <= plain + 2 GB (GPU, SD1.5 512)", None,
                f"CPU peak RSS {d / 1e9:+.2f} GB over plain ({where(main)}); the target is GPU memory")
    for t in ts:
        for n in ("x0-vae", "xt-taesd"):
            r = next((x for x in t["rows"] if x["config"] == n), None)
            label = f"{n} within {X_FLOOR_MAX}x of its FLOP floor ({t['size']} px)"
            if r and "x_floor" in r:
                add(label, "met" if r["x_floor"] <= X_FLOOR_MAX else "not met",
                    f"{r['ratio']:.2f}x plain vs floor {r['floor']:.2f}x: {r['x_floor']:.2f}x the floor; CPU time "
                    f"{r['x_floor_cpu']:.2f}x ({where(t)})")
            elif r:
                add(label, None, "not timed" if "floor" in r else "FLOPs not counted")
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
        if not r or "median_s" not in r:
            continue
        ours = (f"{r['memory_pass']['cuda_peak'] / 1e9:.1f} GB allocated" if cuda and r.get("memory_pass")
                else f"CPU, peak RSS {r['peak_rss_bytes'] / 1e9:.1f} GB")
        add(f"{n} vs {paper} (published {gb} GB, {secs} s for SD at 512)", None if not gpu512 else "reported",
            f"ours: {ours}, {r['median_s']:.1f} s ({where(main)}; different GPU and step count from the paper)")
    return out


def _load(t: dict) -> str:
    if "loadavg_before" not in t:
        return ""
    per_run = [x for r in t["rows"] for x in r.get("loadavg", [])]
    span = f"; during the timed runs {min(per_run):.1f}-{max(per_run):.1f}" if per_run else ""
    return (f" This table took {t['seconds']:.0f} s; load average (1 min) {t['loadavg_before'][0]:.1f} before, "
            f"{t['loadavg_after'][0]:.1f} after{span}.")


def markdown(result: dict) -> str:
    a, m, cuda = result["settings"], result["machine"], result["cuda"]
    dev = m.get("gpu") or m.get("cpu_model") or m["machine"]
    ts = tables(result)
    first = ts[0]
    sizes = ", ".join(f"{t['size']}x{t['size']}" for t in ts)
    legend = "\n".join(f"- **{r['config']}**: {r['description']}" for r in first["rows"])
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
- Workload: {sizes} px, batch {first['batch']}, {first['steps']} steps, cfg {a['cfg']}, \
{a['sampler']}/{a['scheduler']}, denoise {a['denoise']} from the TAESD-encoded content image, seed per run; \
image-loss configurations chain the five losses of `workflows/style_transfer_fast` with its weights and settings \
(content MSE, VGG relu4_2, ZeCon 256 patches, CLIP style 8 cutouts, Gram) at scale {a['scale']}. Each prompt ends \
with a TAESD decode and a preview in every configuration.
- Timing: each prompt runs once as a warm-up ({a['warmup_steps']} step: loads models, builds loss networks and \
reference features, all cached by ComfyUI), then {first['repeats']} timed runs per configuration, interleaved \
(round r runs every configuration once, order rotated), in which only the sampler, the decode and the preview \
re-execute. median/min/max: wall time of one prompt run; "x plain": ratio of medians; CPU s: this process's \
user+system time (less disturbed by other processes on a shared machine than wall time).
- FLOP floor: matmul/conv/attention FLOPs (FlopCounterMode's formulas; CPU flash attention counted like the CUDA \
one) of each part at this size, on the objects ComfyUI built: the UNet forward at the CFG batch per evaluation (on \
shapes), and for a guided evaluation ONE real `GuidanceEngine.direction` call of the pack's own engine, split by \
component (decoder forward, the loss chain's forward with each shared extractor once, one backward per term, the \
decoder backward once; latent terms: their model passes and backwards), plus the UNet backward in xt mode; times \
the evaluations each configuration makes (the pack's own window rule), plus the final TAESD decode. "FLOP floor x" \
= that total over plain's; "x / floor" = measured ratio over the floor (1.00 = guidance costs exactly its extra \
arithmetic). "model evals (guided)": the sampler's model evaluations (CFG batches) counted in the last timed run \
(guided ones).
- Memory: peak RSS is the process's resident-memory high-water mark during a timed run \
({result['rss_method']}); every model stays loaded, so the difference to plain is what guidance adds."""
             + (" Peak CUDA figures come from a separate pass that unloads every model before each configuration's "
                f"run ({a['memory_steps']} steps) and resets torch.cuda's peak statistics, as a fresh process "
                "running only that workflow would see." if cuda else ""), "", legend]
    for t in ts:
        parts += ["", f"## SD1.5 {t['size']} px", "", (_load(t).strip()), "", main_table(t, cuda)]
        wt = work_table(t)
        if wt:
            parts += ["", f"Work of one guided evaluation at {t['size']} px (GFLOP; the chain's forward runs each "
                      "shared extractor once, then each term has its own backward to the pixels through its own "
                      "networks, and one backward of the weighted sum goes through the decoder):", "", wt]
    parts += ["", "## Targets", "", "| target | verdict | figures |", "|---|---|---|"]
    parts += [f"| {x['target']} | {x['verdict']} | {x['detail']} |" for x in result["targets"]]
    for t in ts:
        pt = profile_table(t, cuda)
        if not pt:
            continue
        parts += ["", f"## Where a guided step's time goes ({t['size']} px)", "",
                  "torch.profiler over a 1-step prompt of the configuration; the step is the one model evaluation "
                  "(`CFGGuider.__call__`, the guidance hooks included). Components are labelled with "
                  "`record_function` from the benchmark; backward time is attributed to the component whose forward "
                  "op created the autograd node (sequence numbers). 'loss arithmetic': loss terms outside VGG/CLIP "
                  "(Gram, ZeCon, MSE, cutouts), forward and backward; 'model features': the UNet passes of latent "
                  "terms; 'guidance step': `GuidanceEngine.direction` outside the networks (unit RMS per term, "
                  "weighting, bookkeeping) and the autograd engine's own work; 'other': CFG, hooks, schedule "
                  "look-ups, resizes and everything else inside the evaluation."
                  + (" GPU ms are kernel times." if cuda else ""), "", pt]
        tt = term_table(t, cuda)
        if tt:
            parts += ["", "Each term's backward (the `autograd.grad` call of that term in `balanced_direction`, "
                      "through its own networks only; the same time as above, cut by term):", "", tt]
        et = efficiency_table(t, cuda)
        if et:
            parts += ["", "Achieved GFLOP/s per component (FLOP counts over the profiled "
                      + ("kernel" if cuda else "CPU") + " times). Where these differ, the FLOP floor is not a "
                      "floor: guidance work that runs faster per FLOP than the plain UNet lands below it.", "", et]
        for n, p in t["profiles"].items():
            if p.get("top_other_ops_ms"):
                ops = ", ".join(f"{k} {v:.1f} ms" for k, v in p["top_other_ops_ms"].items())
                parts.append(f"\n- {n}: prompt {p['prompt_s']:.2f} s for a {p['step_s']:.2f} s step; "
                             f"sync points {p['sync_points'] or 'none'}; largest 'other'/'guidance step' ops: {ops}")
    if result.get("sdxl"):
        s = result["sdxl"]
        parts += ["", f"## SDXL {s['size']} px", "", f"{s['steps']} steps, batch {s['batch']}, cfg {a['cfg']}; "
                  "TAESDXL for encode/decode.", "", main_table(s, cuda)]
        wt = work_table(s)
        if wt:
            parts += ["", wt]
    if result.get("scaling"):
        parts += ["", "## Scaling (SD1.5, plain vs fast)", "",
                  f"{a['scaling_steps']} steps, median of {a['scaling_repeats']} runs after a warm-up; peak memory "
                  "from the memory pass" + (" (CUDA allocated)." if cuda else " (RSS)."), "",
                  scaling_table(result["scaling"], cuda)]
    return "\n".join(parts) + "\n"
