"""Make the video workflow's sample clip: a slow pan and zoom over the sample content picture.

    python scripts/make_clip.py [--check]

Writes ``workflows/images/style_guidance_content_clip.mp4`` (17 frames, 16 fps, 208 x 120, H.264
through PyAV, the library ComfyUI's LoadVideo reads it with). 17 frames = 1 + 4 x 4, the Wan 2.1
VAE's frame rule, so the whole clip encodes to 5 latent frames with nothing trimmed. ``--check``
decodes the file and says whether its frame count and size are these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "workflows" / "images" / "style_guidance_content.jpg"
CLIP = ROOT / "workflows" / "images" / "style_guidance_content_clip.mp4"
FRAMES, FPS = 17, 16  # about a second at Wan 2.1's own rate
WIDTH, HEIGHT = 208, 120  # Wan's 832 x 480 aspect, a multiple of 8 (and even, for yuv420p)
ZOOM = 0.15  # the last frame's window is this much smaller than the first's


def frames(source: Path = SOURCE) -> list[np.ndarray]:
    """The clip's frames (H x W x 3 uint8): a window of the clip's aspect that pans right and zooms in."""
    with Image.open(source) as im:
        picture = im.convert("RGB")
    sw, sh = picture.size
    out = []
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        w = sw * (1.0 - ZOOM * t)  # the window: as wide as the picture at first, then narrower
        h = w * HEIGHT / WIDTH
        x0 = (sw - w) * t  # from the left edge to the right edge
        y0 = (sh - h) / 2
        box = (x0, y0, x0 + w, y0 + h)
        out.append(np.asarray(picture.resize((WIDTH, HEIGHT), Image.LANCZOS, box=box)))
    return out


def write(path: Path = CLIP) -> None:
    """Encode the frames to ``path`` (H.264, one thread, so the bytes do not depend on the machine's cores)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        stream.thread_count = 1
        for array in frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        container.mux(stream.encode())


def check(path: Path = CLIP) -> list[str]:
    """What is wrong with the clip on disk (empty: it decodes to FRAMES frames of WIDTH x HEIGHT)."""
    import av

    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    problems = []
    if len(decoded) != FRAMES:
        problems.append(f"{len(decoded)} frames, not {FRAMES}")
    if decoded and decoded[0].shape[:2] != (HEIGHT, WIDTH):
        problems.append(f"frames of {decoded[0].shape[1]} x {decoded[0].shape[0]}, not {WIDTH} x {HEIGHT}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the clip on disk")
    if not ap.parse_args().check:
        write()
        print(f"wrote {CLIP.relative_to(ROOT)} ({CLIP.stat().st_size} bytes)")
    problems = check()
    for line in problems:
        print(f"{CLIP.name}: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
