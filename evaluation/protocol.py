"""Run the whole protocol on three folders: pairs -> FID, LPIPS, LPIPS grey, CFSD, ArtFID."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import images as I
from .fid import frechet_distance_of
from .inception import load_art_inception
from .lpips_metric import LPIPSAlex
from .pairing import pair_images
from .pairwise import PAIRWISE, PairwiseNetworks, pair_scores
from .weights import WeightFile, locate, losses_vgg, read

METRICS = ("ArtFID", "FID", "LPIPS", "LPIPS_grey", "CFSD")


@dataclass
class Networks:
    """The three networks, loaded once, and the files they came from."""

    inception: torch.nn.Module
    lpips: LPIPSAlex
    vgg: torch.nn.Module
    files: dict[str, WeightFile]


@dataclass
class Report:
    """Scores, per-pair values, the weight files' hashes, and every note about the inputs."""

    scores: dict[str, float] = field(default_factory=dict)
    pairs: list[dict] = field(default_factory=list)
    weights: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"scores": self.scores, "pairs_scored": len(self.pairs), "weights": self.weights,
                "problems": self.problems, "notes": self.notes, "seconds": round(self.seconds, 3),
                "per_pair": self.pairs}


def load_networks(models: Path, device: str = "cpu") -> Networks:
    """Locate (never download) and load the protocol's networks from ``models``."""
    files = locate(models)
    inc = load_art_inception(read(files["inception"].path, "art_inception"), str(files["inception"].path))
    lp = LPIPSAlex(read(files["alexnet"].path, "AlexNet"), read(files["lpips_heads"].path, "LPIPS heads"),
                   str(files["alexnet"].path))
    vgg = losses_vgg().load_vgg19_features(str(files["vgg19"].path))
    return Networks(inc.to(device), lp.to(device), vgg.to(device), files)


def evaluate_folders(stylised: Path, content: Path, style: Path, models: Path, device: str = "cpu",
                     nets: Networks | None = None, fid_method: str = "sqrtm",
                     short_side: int = I.SHORT_SIDE) -> Report:
    """Score every ``{content}_stylized_{style}`` image in ``stylised``; needs at least 2 pairs (FID).

    ``fid_method``: see :func:`evaluation.fid.frechet_distance_of`. ``short_side``: the protocol's
    512; stand-in runs use less to stay fast (their scores mean nothing anyway).
    """
    t0 = time.perf_counter()
    found = pair_images(Path(stylised), Path(content), Path(style))
    rep = Report(problems=list(found.problems))
    if len(found.pairs) < 2:
        raise ValueError(f"{len(found.pairs)} pair(s) found in {stylised}; FID needs at least 2. "
                         + ("; ".join(found.problems[:5]) or "Names must be {content}_stylized_{style}.png."))
    nets = nets or load_networks(models, device)
    rep.weights = {k: {"role": w.role, "file": str(w.path), "sha256": w.sha256} for k, w in nets.files.items()}
    feats_out, feats_style, cache = [], [], {}
    resized = 0
    pairwise = PairwiseNetworks(nets.lpips, nets.vgg)

    def dev(t: torch.Tensor) -> torch.Tensor:
        return t.to(device)

    with torch.no_grad():
        for pair in found.pairs:
            out = I.load_rgb(pair.stylised)
            if pair.content not in cache:
                cache[pair.content] = I.load_rgb(pair.content)
            cont = cache[pair.content]
            if pair.style not in cache:
                st = I.resized(I.load_rgb(pair.style), short_side)
                cache[pair.style] = nets.inception(dev(I.to_tensor(st))).cpu().double().numpy()[0]
            feats_style.append(cache[pair.style])
            feats_out.append(nets.inception(dev(I.to_tensor(I.resized(out, short_side)))).cpu().double().numpy()[0])
            scores, changed = pair_scores(pairwise, out, cont, PAIRWISE, short_side)
            resized += changed
            rep.pairs.append({"stylised": pair.stylised.name, "content": pair.content.name, "style": pair.style.name,
                              **scores})
    fid = frechet_distance_of(np.stack(feats_out), np.stack(feats_style), fid_method)
    lp_mean = float(np.mean([p["LPIPS"] for p in rep.pairs]))
    rep.scores = {
        "ArtFID": (1.0 + lp_mean) * (1.0 + fid),
        "FID": fid,
        "LPIPS": lp_mean,
        "LPIPS_grey": float(np.mean([p["LPIPS_grey"] for p in rep.pairs])),
        "CFSD": float(np.mean([p["CFSD"] for p in rep.pairs])),
    }
    rep.notes.append(f"FID square root: {fid_method}; shorter side {short_side} px"
                     + ("" if short_side == I.SHORT_SIDE else " (NOT the protocol's 512)"))
    if resized:
        rep.notes.append(f"{resized} stylised image(s) differ in size from their content "
                         "image and were resized to it (bilinear) for LPIPS/CFSD; the protocol assumes equal sizes")
    rep.seconds = time.perf_counter() - t0
    return rep
