"""Pair stylised images with their content and style images by name: ``{content}_stylized_{style}``.

The protocol's own scripts sort three folders and zip them; here each stylised file is parsed
instead, so missing, extra and misnamed files are found and named rather than silently shifted.
The content/style folders may hold the originals (``00.png``) or the protocol's duplicated
``*_eval`` copies named like the stylised files; both are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .images import EXTENSIONS

TAG = "_stylized_"


@dataclass(frozen=True)
class Pair:
    """One stylised image with the content and style images it came from."""

    stylised: Path
    content: Path
    style: Path
    content_name: str
    style_name: str


@dataclass
class PairingResult:
    """Pairs in sorted stylised-name order, and every file that could not be used, with the reason."""

    pairs: list[Pair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unused_content: list[Path] = field(default_factory=list)
    unused_style: list[Path] = field(default_factory=list)


def image_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files (by extension) directly in ``folder``, sorted; notes for anything else skipped."""
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files, notes = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in EXTENSIONS:
            files.append(p)
        elif p.is_file() and not p.name.endswith((".csv", ".json", ".md", ".txt")):
            notes.append(f"{p}: skipped, not a .jpg/.jpeg/.png image")
    return files, notes


def _unreadable(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            im.verify()
        return None
    except Exception as e:  # noqa: BLE001 - any decoder failure means this file cannot be scored
        return f"{path}: unreadable image ({type(e).__name__}: {e})"


def _by_stem(files: list[Path]) -> dict[str, Path]:
    return {p.stem: p for p in files}


def pair_images(stylised_dir: Path, content_dir: Path, style_dir: Path) -> PairingResult:
    """Parse every stylised name, find its content and style images, and name every failure."""
    res = PairingResult()
    stylised, notes = image_files(stylised_dir)
    contents, c_notes = image_files(content_dir)
    styles, s_notes = image_files(style_dir)
    res.problems += notes + c_notes + s_notes
    c_map, s_map = _by_stem(contents), _by_stem(styles)
    used_c: set[Path] = set()
    used_s: set[Path] = set()
    bad_inputs: dict[Path, str | None] = {}

    def readable(p: Path) -> bool:
        if p not in bad_inputs:
            bad_inputs[p] = _unreadable(p)
            if bad_inputs[p]:
                res.problems.append(bad_inputs[p])
        return bad_inputs[p] is None

    for img in stylised:
        stem = img.stem
        if TAG not in stem:
            res.problems.append(f"{img}: name is not {{content}}{TAG}{{style}}; not paired")
            continue
        # A content name may itself contain the tag: try every split, keep the first that resolves.
        found = None
        starts = [i for i in range(len(stem)) if stem.startswith(TAG, i)]
        for i in starts:
            c_name, s_name = stem[:i], stem[i + len(TAG):]
            c = c_map.get(stem) or c_map.get(c_name)
            s = s_map.get(stem) or s_map.get(s_name)
            if c is not None and s is not None:
                found = (c, s, c_name, s_name)
                break
        if found is None:
            c_name, s_name = stem[:starts[0]], stem[starts[0] + len(TAG):]
            missing = []
            if not (c_map.get(stem) or c_map.get(c_name)):
                missing.append(f"content '{c_name}' in {content_dir}")
            if not (s_map.get(stem) or s_map.get(s_name)):
                missing.append(f"style '{s_name}' in {style_dir}")
            res.problems.append(f"{img}: no {' and no '.join(missing)}; not paired")
            continue
        c, s, c_name, s_name = found
        if not (readable(img) & readable(c) & readable(s)):
            res.problems.append(f"{img}: not paired (an image of the pair is unreadable)")
            continue
        used_c.add(c)
        used_s.add(s)
        res.pairs.append(Pair(img, c, s, c_name, s_name))
    res.unused_content = [p for p in contents if p not in used_c]
    res.unused_style = [p for p in styles if p not in used_s]
    res.problems += [f"{p}: content image with no stylised image; unused" for p in res.unused_content]
    res.problems += [f"{p}: style image with no stylised image; unused" for p in res.unused_style]
    return res
