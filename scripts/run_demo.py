"""Main job on a fresh machine: a style transfer through the shipped demo workflow, headless.

No real model weights exist on a fresh machine, so this builds the tiny random-weight test
models and runs workflows/demo_tiny_api.json (all five losses + StyleGuidanceSampler) with
ComfyUI's own executor. The picture is noise-like by construction; the point is that the whole
pipeline runs. Point the same graph at real models in the editor for a real style transfer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import comfy as hc  # noqa: E402
from harness import models  # noqa: E402
from harness.locate import locate_comfyui  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workflow", default=str(ROOT / "workflows" / "demo_tiny_api.json"))
    ap.add_argument("--output", default=str(ROOT / "output"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--scale", type=float, default=None)
    args = ap.parse_args()

    print("Style Guidance demo: TINY RANDOM-WEIGHT test models (no real weights on this machine).")
    comfy_root = locate_comfyui()
    base = hc.make_base(Path(tempfile.mkdtemp(prefix="sg_demo_")))
    hc.configure_comfy(comfy_root, base)
    models.build_all(base / "models")
    hc.init_nodes()
    prompt = json.loads(Path(args.workflow).read_text())
    for node in prompt.values():
        if node["class_type"] == "StyleGuidanceSampler":
            if args.seed is not None:
                node["inputs"]["seed"] = args.seed
            if args.scale is not None:
                node["inputs"]["scale"] = args.scale
    runner = hc.InProcessComfy()
    start = time.perf_counter()
    result = runner.run(prompt)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for node_id, ui in result.outputs.items():
        for img in ui.get("images", []):
            src = base / "output" / img["subfolder"] / img["filename"]
            shutil.copy(src, out_dir / img["filename"])
            print(f"wrote {out_dir / img['filename']}")
        for text in ui.get("text", []):
            print(f"loss terms of the result (node {node_id}):\n{text}")
    print(f"done in {time.perf_counter() - start:.1f} s (ComfyUI at {comfy_root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
