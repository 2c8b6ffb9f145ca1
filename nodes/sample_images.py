"""The shipped workflows' sample images, put where ComfyUI's Load Image finds them.

Every workflow in ``workflows/`` names ``style_guidance_content.jpg`` (or, the video workflow, the clip
``style_guidance_content_clip.mp4`` in its Load Video node) and ``style_guidance_style.jpg`` in its
Load Image nodes. Both loaders list and open files in ComfyUI's input folder only, so on
the first load of the pack each sample image that is not there yet is copied there: a template
then runs as shipped without the user copying anything. A file of the same name that is already
there (the user's own, or an earlier copy) is never replaced; any failure is logged, never raised,
so an input folder that cannot be written only costs the user a manual copy.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("style_guidance")

SAMPLES = Path(__file__).resolve().parents[1] / "workflows" / "images"
SUFFIXES = (".jpg", ".mp4")  # the pictures and the video workflow's clip


def install_sample_images(input_dir: str | Path | None = None) -> list[str]:
    """Copy each sample image absent from ``input_dir`` (default: ComfyUI's input folder); return the names copied."""
    copied: list[str] = []
    try:
        if input_dir is None:
            import folder_paths

            input_dir = folder_paths.get_input_directory()
        target = Path(input_dir)
        target.mkdir(parents=True, exist_ok=True)
        for src in sorted(p for p in SAMPLES.iterdir() if p.suffix in SUFFIXES):
            dest = target / src.name
            try:
                out = open(dest, "xb")  # noqa: SIM115 - "x": never replaces a file that is there
            except FileExistsError:
                continue
            except OSError as e:
                log.warning("Style Guidance: could not copy the sample image %s to %s (%s); copy it by hand "
                            "to run the shipped workflows as they are", src.name, target, e)
                continue
            try:
                with out, open(src, "rb") as data:
                    shutil.copyfileobj(data, out)
            except OSError as e:
                dest.unlink(missing_ok=True)  # the file this call created, half written
                log.warning("Style Guidance: could not copy the sample image %s to %s (%s)", src.name, target, e)
                continue
            copied.append(src.name)
    except Exception as e:  # noqa: BLE001 - never stop the pack from loading over sample pictures
        log.warning("Style Guidance: sample images not installed in ComfyUI's input folder (%s)", e)
        return copied
    if copied:
        log.info("Style Guidance: copied the workflows' sample images %s to %s", ", ".join(copied), target)
    return copied
