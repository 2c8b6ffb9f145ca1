"""Turn the browser test's screenshots into the committed pictures.

    .venv/bin/python -m pytest tests/test_browser.py      # takes the screenshots (test-artifacts/browser/)
    .venv/bin/python scripts/gen_pictures.py              # writes the pictures below from them

- ``web/docs/<NodeId>/graph.png``: each node in a small graph, for its help pages
  (from ``test-artifacts/browser/nodes/<NodeId>.png``);
- ``workflows/<name>.jpg``: the template browser's thumbnail of every workflow in ``workflows/``
  (from ``thumbnails/<name>.png``);
- ``docs/editor_style_transfer_fast.jpg``: the editor with ``style_transfer_fast`` loaded, for the
  README (from ``style_transfer_fast.png``).

Every node and every workflow is covered: a screenshot that is missing is an error, so a new
node or workflow cannot be left without its picture. ``--only NAME ...`` writes just those
workflows' or nodes' pictures (the others' screenshots need not exist).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "browser"
DOCS = ROOT / "web" / "docs"
WORKFLOWS = ROOT / "workflows"
README_SHOT = ("style_transfer_fast", ROOT / "docs" / "editor_style_transfer_fast.jpg")

GRAPH_WIDTH = 900  # help-page pictures: readable in the editor's side panel, small files
THUMB_SIZE = (640, 480)  # template-browser cards are about this size
README_WIDTH = 1280


def _fit(img: Image.Image, width: int, height: int | None = None) -> Image.Image:
    scale = min(1.0, width / img.width, (height or img.height) / img.height)
    if scale < 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    return img


def graph_png(src: Path, dest: Path) -> None:
    img = _fit(Image.open(src).convert("RGB"), GRAPH_WIDTH)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A 128-colour palette keeps UI screenshots sharp at a fraction of the size.
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(dest, optimize=True)


def jpeg(src: Path, dest: Path, width: int, height: int | None = None, quality: int = 85) -> None:
    img = _fit(Image.open(src).convert("RGB"), width, height)
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, "JPEG", quality=quality, optimize=True, progressive=True)


def node_ids() -> list[str]:
    """The pack's nodes, as the generated English locale lists them (scripts/gen_locales.py)."""
    return sorted(json.loads((ROOT / "locales" / "en" / "nodeDefs.json").read_text(encoding="utf-8")))


def workflow_names() -> list[str]:
    return sorted(p.stem for p in WORKFLOWS.glob("*.json"))


def plan() -> list[tuple[Path, Path, str]]:
    """(screenshot, picture, kind) for every picture this script writes."""
    jobs = [(SHOTS / "nodes" / f"{n}.png", DOCS / n / "graph.png", "graph") for n in node_ids()]
    jobs += [(SHOTS / "thumbnails" / f"{w}.png", WORKFLOWS / f"{w}.jpg", "thumbnail") for w in workflow_names()]
    jobs.append((SHOTS / f"{README_SHOT[0]}.png", README_SHOT[1], "readme"))
    return jobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="write only these workflows' thumbnails / nodes' pictures (after running just their "
                         "browser test cases, e.g. pytest tests/test_browser.py -k NAME)")
    args = ap.parse_args()
    jobs = plan()
    if args.only:
        jobs = [job for job in jobs if job[0].stem in args.only]
        unknown = sorted(set(args.only) - {src.stem for src, _, _ in jobs})
        if unknown:
            print(f"no workflow or node named {', '.join(unknown)}")
            return 1
    missing = [src for src, _, _ in jobs if not src.is_file()]
    if missing:
        print("screenshots missing (run the browser test first: .venv/bin/python -m pytest tests/test_browser.py):")
        for src in missing:
            print("  ", src.relative_to(ROOT))
        return 1
    for src, dest, kind in jobs:
        if kind == "graph":
            graph_png(src, dest)
        elif kind == "thumbnail":
            jpeg(src, dest, *THUMB_SIZE, quality=82)
        else:
            jpeg(src, dest, README_WIDTH)
        print(f"wrote {dest.relative_to(ROOT)} ({dest.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
