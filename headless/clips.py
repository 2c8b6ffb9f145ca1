"""The runner's video inputs: clip files, or a folder of frames made into one clip, for a video workflow.

A workflow whose content comes from a Load Video node (``style_transfer_wan``) takes a video file
(anything PyAV, which Load Video reads with, decodes: .mp4, .webm, .mov, ...) or a folder of pictures,
its frames in name order, which the runner encodes into one lossless MP4. A still picture given to a
video workflow, or a video given to a picture workflow, ends the run at once with what to give instead.
Needs PyAV (ComfyUI's own requirement) only when a video is read or written; no ComfyUI.
"""

from __future__ import annotations

import io
from pathlib import Path

from .inputs import Collected, InputError, _special_problem, checked_path, image_problem

# Suffixes taken for videos without opening them (a folder's other files are still probed).
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v", ".mpg", ".mpeg", ".ogv"}
FRAMES_FPS = 16  # a folder of frames becomes a clip at Wan 2.1's own rate


def _still_picture(path: Path) -> bool:
    """Whether Pillow reads ``path`` as a picture of one frame (JPEG, PNG, ...), not a clip."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) == 1 or im.format == "MPO"
    except Exception:  # noqa: BLE001 - not a picture Pillow knows: maybe a video
        return False


def video_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable video (no video stream, no frame, unreadable), or None."""
    try:
        import av
    except ImportError:
        return "PyAV (the 'av' package, which ComfyUI's Load Video needs) is not installed"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream in the file"
            for _frame in container.decode(video=0):
                return None  # one decoded frame is enough to know Load Video can read it
            return "the video has no frame"
    except Exception as e:  # noqa: BLE001 - any demuxer or decoder failure means this file is skipped
        return f"not a readable video ({type(e).__name__}: {e})"


def is_video_file(path: Path) -> bool:
    """Whether ``path`` is a video rather than a picture (its suffix, or PyAV reading more than a still)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    return path.is_file() and not _still_picture(path) and image_problem(path)[0] is not None \
        and video_problem(path) is None


def still_for_video_message(arg: str, workflow: str) -> str:
    return (f"--content {arg}: a still picture, but the workflow {workflow} restyles a video (its content "
            "is a Load Video node); give a video file (.mp4, .webm, .mov, ...) or a folder of its frames as "
            "pictures (taken in name order)")


def video_for_still_message(arg: str, workflow: str) -> str:
    return (f"--content {arg}: a video, but the workflow {workflow} restyles a still picture (its content is a "
            "Load Image node); give a picture (or a folder of pictures), or run a video workflow: "
            "python -m headless style_transfer_wan --content clip.mp4 ...")


def collect_clips(arg: str, workflow: str) -> Collected:
    """The content clips at ``arg`` for a video workflow: a video file, a folder of frames, or a folder of videos.

    A folder holding pictures is one clip of those pictures in name order (its videos, if any, are
    skipped and named); a folder of videos only gives each of them as a clip.
    """
    path = checked_path(arg, "content")
    out = Collected()
    if not path.is_dir():
        if _still_picture(path):
            raise InputError(still_for_video_message(arg, workflow))
        problem = video_problem(path)
        if problem:
            raise InputError(f"--content {arg}: {problem}")
        out.images.append(path.absolute())
        return out
    frames, videos = [], []
    for p in sorted(q for q in path.iterdir() if not q.name.startswith(".")):
        if p.is_dir() or _special_problem(p):
            out.skipped.append(f"skipped {p}: not a file (a folder of frames is not searched further)")
        elif p.suffix.lower() not in VIDEO_SUFFIXES and image_problem(p)[0] is None:
            frames.append(p)
        elif video_problem(p) is None:
            videos.append(p)
        else:
            out.skipped.append(f"skipped {p}: neither a picture (a frame) nor a readable video")
    if frames:
        out.images.append(path.absolute())
        out.notes.append(f"note: --content {arg}: {len(frames)} pictures in name order make one clip "
                         f"({frames[0].name} ... {frames[-1].name})")
        out.skipped += [f"skipped {v}: a video in a folder of frames (give it on its own)" for v in videos]
    else:
        out.images += [v.absolute() for v in videos]
    if not out.images and not out.skipped:
        raise InputError(f"--content {arg}: the folder has no frames and no videos")
    return out


def frame_paths(folder: Path) -> list[Path]:
    """A folder clip's frames: its pictures (not hidden, not videos), in name order."""
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
            and p.suffix.lower() not in VIDEO_SUFFIXES and image_problem(p)[0] is None]


def frames_to_mp4(frames: list[Path], fps: int = FRAMES_FPS) -> bytes:
    """The frames as one lossless H.264 MP4 (4:4:4, so colours survive); each resized to the first's size."""
    import av
    import numpy as np
    from PIL import Image, ImageOps

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv444p"  # 4:2:0 would need even sizes and lose colour detail
        stream.options = {"crf": "0", "preset": "veryfast"}
        size = None
        for path in frames:
            with Image.open(path) as im:
                frame = ImageOps.exif_transpose(im).convert("RGB")
            if size is None:
                size = frame.size
                stream.width, stream.height = size
            elif frame.size != size:
                frame = frame.resize(size, Image.LANCZOS)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                container.mux(packet)
        container.mux(stream.encode())
    return buf.getvalue()


def clip_bytes(path: Path) -> tuple[bytes, str]:
    """The bytes Load Video gets for a content clip and their suffix: a video as it is, a folder as an MP4."""
    if path.is_dir():
        return frames_to_mp4(frame_paths(path)), ".mp4"
    return path.read_bytes(), path.suffix.lower() or ".mp4"
