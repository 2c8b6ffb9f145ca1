"""Turn the browser test's screenshots into the committed pictures.

    .venv/bin/python -m pytest tests/test_browser.py      # takes the screenshots (test-artifacts/browser/)
    .venv/bin/python scripts/gen_pictures.py              # writes the pictures below from them

- ``web/docs/<NodeId>/graph.png``: each node in a small graph, for its help pages
  (from ``test-artifacts/browser/nodes/<NodeId>.png``);
- ``workflows/<name>.jpg``: the template browser's card of every workflow in ``workflows/``, drawn
  here (no screenshot): its title and one-line description (``sg_workflow_defs/templates.py``; the
  editor shows only the file name), "start here" on the starter, the content and style pictures
  it ships with, and where its result would be: a result picture needs the real model weights,
  which this repository's tests never download, so the card says so instead of showing one;
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

from PIL import Image, ImageDraw, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):  # appended: the definitions import headless (ComfyUI's modules win)
    if str(_path) not in sys.path:
        sys.path.append(str(_path))
from sg_workflow_defs.templates import STARTER, TEMPLATES  # noqa: E402

from headless.testbed.standins.names import model_files  # noqa: E402

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


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's own scalable font: the same everywhere


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> ImageFont.ImageFont:
    while size > 12 and draw.textlength(text, font=_font(size)) > width:
        size -= 1
    return _font(size)


def _clip_frames(path: Path, count: int) -> list[Image.Image]:
    """``count`` frames of a clip spread from its first to its last (PyAV, as ComfyUI's Load Video reads it)."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    return [frames[round(k * (len(frames) - 1) / max(count - 1, 1))] for k in range(count)]


def card(name: str, dest: Path) -> None:
    """The template browser's card of one workflow (see the module docstring)."""
    title, description = TEMPLATES[name]
    w, h = THUMB_SIZE
    img = Image.new("RGB", (w, h), (32, 33, 38))
    draw = ImageDraw.Draw(img)
    if name == STARTER:
        draw.rectangle([0, 0, w, 8], fill=(72, 160, 90))
        draw.rounded_rectangle([w - 150, 22, w - 20, 54], radius=8, fill=(72, 160, 90))
        draw.text((w - 85, 38), "START HERE", font=_font(18), fill="white", anchor="mm")
    draw.text((24, 24), title, font=_fit_text(draw, title, w - (200 if name == STARTER else 48), 30), fill="white")
    draw.text((24, 70), description, font=_fit_text(draw, description, w - 48, 20), fill=(190, 190, 200))
    side, top = 176, 130
    images = WORKFLOWS / "images"
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text(encoding="utf-8"))
    video = next((n["inputs"]["file"] for n in api.values() if n["class_type"] == "LoadVideo"), None)
    content = ("content video", images / video) if video else ("content", images / "style_guidance_content.jpg")
    for i, (label, src) in enumerate((content, ("style", images / "style_guidance_style.jpg"), ("result", None))):
        x = 24 + i * (side + 32)
        if src is not None and src.suffix == ".mp4":  # a clip: its first, middle and last frames, a film strip
            for j, frame in enumerate(_clip_frames(src, 3)):
                strip = side // 3
                img.paste(ImageOps.fit(frame, (side, strip - 4), Image.LANCZOS), (x, top + j * strip + 2))
        elif src is not None:
            img.paste(ImageOps.fit(Image.open(src).convert("RGB"), (side, side), Image.LANCZOS), (x, top))
        else:
            draw.rectangle([x, top, x + side, top + side], outline=(120, 120, 130), width=2)
            for j, line in enumerate(("needs the real", "model weights:", "run it to see", "your result")):
                draw.text((x + side / 2, top + 52 + 24 * j), line, font=_font(17), fill=(170, 170, 180), anchor="mm")
        draw.text((x + side / 2, top + side + 20), label, font=_font(18), fill=(220, 220, 225), anchor="mm")
        cx, cy = x + side + 16, top + side / 2
        if i == 0:
            draw.text((cx, cy), "+", font=_font(28), fill="white", anchor="mm")
        elif i == 1:  # an arrow: the font has no arrow glyph
            draw.line([cx - 10, cy, cx + 6, cy], fill="white", width=3)
            draw.polygon([(cx + 12, cy), (cx + 2, cy - 7), (cx + 2, cy + 7)], fill="white")
    files = sorted({Path(f).stem for _node, _input, f, _folder in model_files(json.loads(
        (WORKFLOWS / "api" / f"{name}.json").read_text(encoding="utf-8")))})
    lines, font = [""], _font(15)
    for word in ("Needs: " + ", ".join(files)).split(" "):
        if lines[-1] and draw.textlength(f"{lines[-1]} {word}", font=font) > w - 48:
            lines.append("")
        lines[-1] = f"{lines[-1]} {word}".strip()
    for j, line in enumerate(lines[:2]):
        draw.text((24, h - 96 + 22 * j), line, font=font, fill=(170, 170, 180))
    draw.text((24, h - 40), f"workflows/{name}.json", font=_font(16), fill=(140, 140, 150))
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, "JPEG", quality=88, optimize=True, progressive=True)


def node_ids() -> list[str]:
    """The pack's nodes, as the generated English locale lists them (scripts/gen_locales.py)."""
    return sorted(json.loads((ROOT / "locales" / "en" / "nodeDefs.json").read_text(encoding="utf-8")))


def workflow_names() -> list[str]:
    return sorted(p.stem for p in WORKFLOWS.glob("*.json"))


def plan() -> list[tuple[Path, Path, str]]:
    """(screenshot, picture, kind) for every picture this script writes."""
    jobs = [(SHOTS / "nodes" / f"{n}.png", DOCS / n / "graph.png", "graph") for n in node_ids()]
    jobs += [(WORKFLOWS / f"{w}.json", WORKFLOWS / f"{w}.jpg", "card") for w in workflow_names()]
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
        elif kind == "card":
            card(src.stem, dest)
        else:
            jpeg(src, dest, README_WIDTH)
        print(f"wrote {dest.relative_to(ROOT)} ({dest.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
