"""``python -m headless evaluate``: score stylised images with the field's protocol (ArtFID et al.).

    python -m headless evaluate STYLISED --content DIR --style DIR [--models DIR] [--out STEM]

The metrics live in the ComfyUI-free :mod:`evaluation` package; definitions: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from evaluation import weights as W

EXIT_OK, EXIT_SOME_SKIPPED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The ``evaluate`` subcommand's arguments."""
    ap = argparse.ArgumentParser(
        prog="python -m headless evaluate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Score stylised images with the style-transfer evaluation protocol of ArtFID/StyleID:\n"
            "  ArtFID = (1 + LPIPS) * (1 + FID)\n"
            "  FID: art-trained Inception v3 pool features, stylised set vs style set (shorter side 512)\n"
            "  LPIPS (AlexNet, v0.1) to the content image, and its grey-scale variant (shorter side 512)\n"
            "  CFSD: KL between VGG19 relu3_1 self-similarity rows, content -> stylised (full size)\n"
            "Stylised files must be named {content}_stylized_{style}.png (.jpg); the content and style\n"
            "folders hold {content}.png and {style}.png (or the protocol's duplicated *_eval copies).\n"
            "Every unpaired or unreadable file is named. Definitions: docs/evaluation.md."
        ),
        epilog=(
            "weights (never downloaded; looked for in MODELS, default <ComfyUI>/models):\n"
            f"  evaluation/{W.INCEPTION}   {W.SOURCES[W.INCEPTION]}\n"
            f"  evaluation/{W.ALEXNET}   {W.SOURCES[W.ALEXNET]}\n"
            f"  vgg/{W.VGG19}   {W.SOURCES[W.VGG19]}\n"
            f"  LPIPS heads: evaluation/{W.LPIPS_HEADS}, else {W.SOURCES[W.LPIPS_HEADS]}\n"
            "outputs: STEM.csv (one row: the scores, the pair count, the weights' SHA-256) and STEM.json\n"
            "(the same plus per-pair LPIPS/CFSD and every note).\n"
            "exit status: 0 scored; 1 scored, but some files were skipped (named); 2 nothing scored\n"
            "(bad arguments, missing weights, fewer than 2 pairs)."
        ),
    )
    ap.add_argument("stylised", metavar="STYLISED", help="folder of {content}_stylized_{style} images")
    ap.add_argument("--content", required=True, metavar="DIR", help="folder of the content images")
    ap.add_argument("--style", required=True, metavar="DIR", help="folder of the style images")
    ap.add_argument("--models", metavar="DIR",
                    help="ComfyUI models folder holding evaluation/ and vgg/ (default: the runner's ComfyUI's)")
    ap.add_argument("--out", metavar="STEM", help="write STEM.csv and STEM.json (default: STYLISED/evaluation)")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: %(default)s)")
    ap.add_argument("--fid-sqrt", choices=("sqrtm", "svd"), default="sqrtm",
                    help="sqrtm: the protocol's scipy matrix square root (default); svd: the same trace "
                         "from the features' singular values, much faster when pairs < 2048")
    ap.add_argument("--short-side", type=int, default=512, metavar="PX",
                    help="resize for FID/LPIPS (the protocol's %(default)s; change only for quick looks)")
    return ap


def summary_row(rep, n_pairs: int) -> dict:
    """One CSV/JSON row: the five scores, the pair count and each weight file's hash."""
    row = {k: f"{v:.6g}" for k, v in rep.scores.items()}
    row["pairs"] = n_pairs
    for key, w in rep.weights.items():
        row[f"sha256_{key}"] = w["sha256"]
    return row


def write_outputs(stem: Path, rep) -> tuple[Path, Path]:
    """STEM.csv and STEM.json; returns their paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    row = summary_row(rep, len(rep.pairs))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row))
    w.writeheader()
    w.writerow(row)
    csv_path, json_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")
    csv_path.write_text(buf.getvalue(), encoding="utf-8")
    json_path.write_text(json.dumps(rep.as_dict(), indent=1), encoding="utf-8")
    return csv_path, json_path


def main(argv: list[str] | None = None) -> int:
    """Parse, score, print, write; exit status as documented in --help."""
    args = build_parser().parse_args(argv)
    from evaluation.protocol import evaluate_folders

    for name, value in (("STYLISED", args.stylised), ("--content", args.content), ("--style", args.style)):
        if not Path(value).is_dir():
            print(f"error: {name}: not a folder: {value}", file=sys.stderr)
            return EXIT_USAGE
    try:
        if args.models:
            models = Path(args.models)
        else:
            from headless.locate import locate_comfyui

            models = locate_comfyui() / "models"
        rep = evaluate_folders(Path(args.stylised), Path(args.content), Path(args.style), models,
                               device=args.device, fid_method=args.fid_sqrt, short_side=args.short_side)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for line in rep.problems:
        print(f"skipped: {line}", file=sys.stderr)
    for line in rep.notes:
        print(f"note: {line}")
    print(f"{len(rep.pairs)} pair(s) scored in {rep.seconds:.1f} s")
    for k, v in rep.scores.items():
        print(f"  {k:<11} {v:.4f}")
    for w in rep.weights.values():
        print(f"  {w['role']}: {w['file']} sha256 {w['sha256']}")
    stem = Path(args.out) if args.out else Path(args.stylised) / "evaluation"
    for p in write_outputs(stem, rep):
        print(f"wrote {p}")
    return EXIT_SOME_SKIPPED if rep.problems else EXIT_OK
