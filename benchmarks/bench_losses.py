"""Benchmark one combined guidance-loss evaluation (forward + backward) at real model sizes.

Builds a random-weight VGG19 (torchvision layout) and a random-weight open_clip ViT-B-32 (no
download), all five losses (pixel MSE, VGG content, ZeCon, CLIP style, Gram) in one
CombinedLoss, and times loss + backward for a generated image against same-size content and
style images: median of N runs after warm-up. Reports peak memory of an evaluation (CUDA:
allocator peak; CPU: process RSS sampled every 2 ms), above the level before the first
evaluation, and how many times VGG ran per evaluation (1 = shared extraction works).

    python benchmarks/bench_losses.py --device cpu --size 512
    python benchmarks/bench_losses.py --device cuda --size 512 --per-term
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: import the repo's losses/

from headless.testbed.standins.loss_nets import random_vgg19_features  # noqa: E402
from losses import (  # noqa: E402
    CLIPStyleLoss,
    CombinedLoss,
    ContentMSELoss,
    GramStyleLoss,
    VGGContentLoss,
    ZeConLoss,
    load_open_clip_encoder,
)


class PeakMemory:
    """Peak memory above a baseline while the context is open (CUDA allocator or CPU RSS)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            import psutil

            self._proc = psutil.Process()
            self._base = self._proc.memory_info().rss
            self._max = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._proc.memory_info().rss)
            self.peak_bytes = self._max - self._base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """(median seconds, peak extra bytes) of ``fn`` over ``repeats`` runs after ``warmup`` runs.

    The memory window includes the warm-up: once the first run has grown the process, freed
    blocks stay cached (CUDA caching allocator, malloc arenas) and later runs add nothing.
    """
    times = []
    with PeakMemory(device) as mem:
        for _ in range(warmup):
            fn()
        _sync(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), mem.peak_bytes


def _image(seed: int, size: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 16, 16, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (img + 0.05 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1).to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=512, help="generated/content/style side in pixels")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="network dtype")
    ap.add_argument("--cutouts", type=int, default=8, help="CLIP cutouts per evaluation")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--per-term", action="store_true", help="also time each term alone")
    ap.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    args = ap.parse_args()

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    vgg = random_vgg19_features(0).to(device, dtype)
    clip = load_open_clip_encoder("ViT-B-32", None).to(device, dtype)  # random weights: timing only
    content, style = _image(1, args.size, device), _image(2, args.size, device)
    terms = [
        ContentMSELoss(content, weight=1.0),
        VGGContentLoss(content, vgg, layers=("relu4_2",), weight=1.0),
        ZeConLoss(content, vgg, weight=0.1),
        CLIPStyleLoss(style, clip, num_cutouts=args.cutouts, weight=1.0),
        GramStyleLoss(style, vgg, weight=1e4),
    ]
    loss = CombinedLoss(terms).to(device, dtype)
    build_s = time.perf_counter() - t0

    x0 = _image(3, args.size, device).expand(args.batch, -1, -1, -1).contiguous()

    def step(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            x = x0.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(fn(x).sum(), x)
            assert torch.isfinite(grad).all()

        return run

    calls_before = vgg.calls
    loss.reset_rng(0)
    seconds, peak = time_step(step(lambda x: loss(x).total), device, args.warmup, args.repeats)
    vgg_per_eval = (vgg.calls - calls_before) / (args.warmup + args.repeats)

    rows = [("combined (5 terms)", seconds, peak)]
    if args.per_term:
        for name, term in zip(loss.names, loss.terms, strict=True):
            s, p = time_step(step(term), device, args.warmup, args.repeats)
            rows.append((f"  {name} alone", s, p))

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"\nStyle Guidance loss benchmark: {args.size}x{args.size}, batch {args.batch}, {args.dtype}, "
        f"device {device} ({dev_name}), torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print("VGG19 and open_clip ViT-B-32 with random weights; CLIP cutouts:", args.cutouts)
    print(f"build (targets precomputed): {build_s:.2f} s")
    mem_kind = "CUDA alloc peak" if device.type == "cuda" else "RSS peak"
    print(f"\n{'evaluation (forward+backward)':32s} {'median s':>10s} {mem_kind + ' MiB':>28s}")
    for i, (name, s, p) in enumerate(rows):
        # On CPU a term timed after the combined run finds the process already grown: its RSS
        # delta says nothing, so only the first row gets a memory figure there.
        mem = f"{p / 2**20:28.1f}" if (i == 0 or device.type == "cuda") else f"{'-':>28s}"
        print(f"{name:32s} {s:10.3f} {mem}")
    print(f"\nVGG forward calls per combined evaluation: {vgg_per_eval:g}")
    result = loss(x0)
    print("term values:", {k: float(v.mean()) for k, v in result.terms.items()})

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "size": args.size, "batch": args.batch, "dtype": args.dtype, "device": str(device),
                    "device_name": dev_name, "threads": torch.get_num_threads(), "cutouts": args.cutouts,
                    "build_s": build_s, "vgg_calls_per_eval": vgg_per_eval,
                    "rows": [{"name": n.strip(), "median_s": s, "peak_mib": p / 2**20} for n, s, p in rows],
                },
                indent=2,
            )
        )  # fmt: skip


if __name__ == "__main__":
    main()
