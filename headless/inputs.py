"""The runner's inputs: image files and folders, checked and paired, with safe unique output names.

Nothing here needs ComfyUI. Every file that is left out is reported with the reason (not an
image, corrupt, over Pillow's size limit, a dangling or looping symlink, a special file), and
so is every file the runner alters on the way in (only the first frame of an animation is
used; 16-bit and float images are converted to 8 bits, which ComfyUI's LoadImage gets wrong).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# Modes ComfyUI's LoadImage reads correctly as they are; others are converted to 8-bit first.
PASS_THROUGH_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "1", "YCbCr"}
NAME_BYTES = 80  # per stem: two stems and a suffix stay well under the usual 255-byte limit
PAIR_SEPARATOR = "__"


class InputError(Exception):
    """A --content/--style argument that gives nothing to work with (exit 2)."""


@dataclass
class Pair:
    """One content x style run and what became of it."""

    index: int
    content: Path
    style: Path
    name: str  # output file stem: <content-stem>__<style-stem>, unique in the run
    status: str = "pending"  # pending | ok | failed | interrupted | not run
    seconds: float = 0.0
    server: str | None = None
    error: str = ""
    outputs: list[str] = field(default_factory=list)
    measures: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # style_guidance.step events, in order
    tried: list[str] = field(default_factory=list)  # servers this pair was sent to
    attempts: list[str] = field(default_factory=list)  # "<server>: <why it failed>"


@dataclass
class Collected:
    """What a --content/--style argument yields: usable images, skipped files, notes."""

    images: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "skipped <path>: <why>" (exit status 1)
    notes: list[str] = field(default_factory=list)  # said once, not a failure


# ---------------------------------------------------------------------------------------------
# Images


def _pixel_limit() -> int | None:
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


def image_problem(path: Path) -> tuple[str | None, list[str]]:
    """(why ``path`` is unusable or None, notes on how it will be read): verified, then decoded."""
    from PIL import Image, UnidentifiedImageError

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                im.load()
                frames = getattr(im, "n_frames", 1)
                if frames > 1 and im.format != "MPO":
                    notes.append(f"{path} has {frames} frames (animated): only the first frame is used")
                if im.mode not in PASS_THROUGH_MODES:
                    notes.append(f"{path} is {_mode_words(im.mode)}: converted to 8 bits per channel")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        size = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
        return (f"{pixels}, over Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS = "
                f"{_pixel_limit():,}); scale the image down first"), []
    except UnidentifiedImageError:
        return "not an image (PIL cannot identify the file)", []
    except (OSError, SyntaxError, ValueError) as e:
        return f"unreadable or corrupt image ({type(e).__name__}: {e})", []
    except Exception as e:  # noqa: BLE001 - any decoder failure means this file is skipped, not the run
        return f"unreadable image ({type(e).__name__}: {e})", []
    return None, notes


def _mode_words(mode: str) -> str:
    if mode.startswith("I;16") or mode == "I":
        return "a 16-bit image"
    if mode == "F":
        return "a floating-point image"
    return f"a {mode} image"


def image_bytes(path: Path) -> tuple[bytes, str]:
    """The bytes ComfyUI gets for ``path`` and their file suffix.

    Files LoadImage reads correctly go as they are; the first frame of an animation, and 16-bit
    or float images (which LoadImage would turn almost white), become an 8-bit PNG.
    """
    from PIL import Image, ImageOps

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        animated = getattr(im, "n_frames", 1) > 1 and im.format != "MPO"
        if im.mode in PASS_THROUGH_MODES and not animated:
            return data, path.suffix.lower() or ".png"
        im.seek(0)
        frame = ImageOps.exif_transpose(im)
        frame = _to_8bit(frame)
        buf = io.BytesIO()
        frame.save(buf, format="PNG")
    return buf.getvalue(), ".png"


def _to_8bit(im):
    from PIL import Image

    if im.mode.startswith("I") or im.mode == "F":
        import numpy as np

        a = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            top = 1.0 if a.size and float(np.nanmax(a)) <= 1.0 else 255.0
        else:
            top = 65535.0 if a.size and float(a.max()) > 255 else 255.0
        a = np.clip(np.nan_to_num(a) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return im.convert("RGBA")
    return im.convert("RGB")


def input_name(data: bytes, path: Path, suffix: str) -> str:
    """The name an image gets in ComfyUI's input folder: stable per content, no clashes."""
    digest = hashlib.sha1(data).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60].lstrip(".") or "image"
    return f"{stem}_{digest}{suffix}"


# ---------------------------------------------------------------------------------------------
# Files and folders


def _special_problem(path: Path) -> str | None:
    """Why a path that is not a regular file (or a link to one) cannot be read, or None."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        if path.is_symlink():
            return f"a dangling symlink (to {os.readlink(path)})"
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def checked_path(arg: str, role: str) -> Path:
    """``arg`` as a path that exists and can be read (a file or a folder), else InputError naming ``--role``."""
    path = Path(arg).expanduser()
    if not os.path.lexists(path):
        raise InputError(f"--{role} {arg}: no such file or folder")
    problem = _special_problem(path)
    if problem:
        raise InputError(f"--{role} {arg}: {problem}")
    return path


def collect_images(arg: str, role: str) -> Collected:
    """The usable images at ``arg`` (a file or a folder, not searched recursively)."""
    path = checked_path(arg, role)
    out = Collected()
    if path.is_dir():
        candidates, hidden, folders = [], 0, []
        for p in sorted(path.iterdir()):
            if p.name.startswith("."):
                hidden += 1
                continue
            problem = _special_problem(p)
            if problem:
                out.skipped.append(f"skipped {p}: {problem}")
            elif p.is_dir():
                folders.append(p.name)
            else:
                candidates.append(p)
        if folders:
            out.notes.append(f"note: --{role} {arg}: sub-folder(s) not searched (the runner does not recurse): "
                             + ", ".join(folders[:10]) + (" ..." if len(folders) > 10 else ""))
        if hidden:
            out.notes.append(f"note: --{role} {arg}: {hidden} hidden file(s) (names starting with '.') ignored")
        if not candidates and not out.skipped:
            raise InputError(f"--{role} {arg}: the folder has no files")
    else:
        candidates = [path]
    for p in candidates:
        problem, notes = image_problem(p)
        if problem:
            out.skipped.append(f"skipped {p}: {problem}")
        else:
            out.images.append(p.absolute())
            out.notes += [f"note: {n}" for n in notes]
    return out


# ---------------------------------------------------------------------------------------------
# Pairs and output names


def safe_stem(text: str) -> str:
    """A file-name stem that stays inside its folder on every common file system.

    Path separators, control characters and characters Windows forbids become '_', leading dots
    too (no hidden files, no '..'); spaces and other Unicode stay; at most ``NAME_BYTES`` bytes.
    """
    text = unicodedata.normalize("NFC", text)
    text = "".join("_" if ch in '/\\:*?"<>|' or unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = re.sub(r"^\.+", lambda m: "_" * len(m.group()), text.strip())
    raw = text.encode("utf-8")[:NAME_BYTES]
    text = raw.decode("utf-8", errors="ignore").rstrip(" .")
    return text or "image"


def _stems(paths: list[Path]) -> dict[Path, str]:
    """Output stems per file; a stem shared by two files keeps its extension (a_jpg, a_png)."""
    counts: dict[str, int] = {}
    for p in paths:
        key = safe_stem(p.stem).casefold()
        counts[key] = counts.get(key, 0) + 1
    return {p: safe_stem(p.stem if counts[safe_stem(p.stem).casefold()] == 1 else p.name.replace(".", "_"))
            for p in paths}


def unique_names(names: list[str]) -> tuple[list[str], list[str]]:
    """``names`` made unique (case-insensitively, as on macOS/Windows) by a _2, _3 suffix; notes."""
    taken: set[str] = set()
    out, notes = [], []
    for name in names:
        new, k = name, 1
        while new.casefold() in taken:
            k += 1
            new = f"{name}_{k}"
        if new != name:
            notes.append(f"note: two pairs would both be written as {name}.png; this one is {new}.png")
        taken.add(new.casefold())
        out.append(new)
    return out, notes


def make_pairs(contents: list[Path], styles: list[Path], pairing: str) -> tuple[list[Pair], list[str], list[str]]:
    """Pairs in run order, messages about images left without a partner, notes on renamed outputs."""
    cs, ss = _stems(contents), _stems(styles)
    problems: list[str] = []
    if pairing == "zip":
        matched = list(zip(contents, styles, strict=False))
        for p in contents[len(matched):]:
            problems.append(f"skipped content {p}: no style image at the same position (--pairing zip: "
                            f"{len(contents)} contents, {len(styles)} styles)")
        for p in styles[len(matched):]:
            problems.append(f"skipped style {p}: no content image at the same position (--pairing zip: "
                            f"{len(contents)} contents, {len(styles)} styles)")
    else:
        matched = [(c, s) for c in contents for s in styles]
    names, notes = unique_names([f"{cs[c]}{PAIR_SEPARATOR}{ss[s]}" for c, s in matched])
    return [Pair(i, c, s, n) for i, ((c, s), n) in enumerate(zip(matched, names, strict=True))], problems, notes


def output_path(out_dir: Path, file_name: str) -> Path:
    """``out_dir / file_name``, refusing anything that would land elsewhere."""
    path = out_dir / file_name
    if os.sep in file_name or (os.altsep and os.altsep in file_name) or path.resolve().parent != out_dir.resolve():
        raise ValueError(f"output name {file_name!r} would leave the output folder {out_dir}")
    return path
