"""A folder of awkward and unusable inputs for the runner's tests."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_header(width: int, height: int) -> bytes:
    """A PNG claiming a huge size with almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def make_hostile_folder(folder: Path, good: Path) -> dict[str, str]:
    """Images in every awkward form plus files that must be skipped; returns {file: expectation}."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(good) as im:
        rgb = im.convert("RGB").resize((96, 80))
    ramp = (np.linspace(0, 65535, 96 * 80).reshape(80, 96)).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "my photo é ☕ a..b.png")  # 16-bit, awkward name
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette.png", transparency=0)
    frames = [rgb, rgb.rotate(90), rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (folder / "notes.txt").write_text("not an image\n")
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    (folder / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "bomb.png").write_bytes(_png_header(20000, 20000))
    (folder / "bomb_small.png").write_bytes(_png_header(10000, 9000))  # over the limit, under twice it
    os.symlink("loop.png", folder / "loop.png")
    os.symlink("gone.png", folder / "dangling.png")
    (folder / "subfolder").mkdir()
    (folder / "subfolder" / "inner.png").write_bytes(buf.getvalue())
    (folder / ".hidden.png").write_bytes(buf.getvalue())
    return {
        "my photo é ☕ a..b.png": "ok", "cmyk.jpg": "ok", "palette.png": "ok", "anim.gif": "ok",
        "notes.txt": "not an image", "truncated.png": "corrupt", "bomb.png": "decompression-bomb limit",
        "bomb_small.png": "decompression-bomb limit", "loop.png": "symlink loop", "dangling.png": "dangling symlink",
    }
