"""The runner's result files: PNGs with metadata, losses.csv/json, per-step logs, written atomically.

Also the one reading of a prompt's outputs (``/history`` shape, both back ends): which images
were saved and what each Measure node reported, from its structured JSON, never its text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import MEASURE_QUALITY_FIELDS, MEASURE_UI_KEY, STEP_EVENT, current_term_name

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# Files


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a private name in the same folder and rename: a reader never sees half a file.

    The file gets the mode a plain ``open(path, "wb")`` would (0666 less the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def video_suffix(data: bytes) -> str | None:
    """The file suffix of a video a save node wrote (by its first bytes), or None for anything else."""
    if data[4:8] == b"ftyp":  # ISO base media: MP4 (SaveVideo), MOV
        return ".mov" if data[8:10] == b"qt" else ".mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # Matroska: WebM (SaveWEBM)
        return ".webm"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":  # an animated WebP (SaveAnimatedWEBP)
        return ".webp"
    return None


def result_names(stem: str, suffixes: list[str]) -> list[str]:
    """The pair's result files: ``<stem><suffix>``, or numbered ``<stem>_<n><suffix>`` when there are several."""
    if len(suffixes) == 1:
        return [f"{stem}{suffixes[0]}"]
    return [f"{stem}_{i + 1}{suffix}" for i, suffix in enumerate(suffixes)]


def add_png_text(png: bytes, key: str, value: str) -> bytes:
    """Insert a tEXt chunk before IEND, leaving every other byte (and chunk) as ComfyUI wrote it."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    data = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IEND":
            return png[:pos] + chunk + png[pos:]
        pos += 12 + length
    raise ValueError("PNG without IEND chunk")


def finite(v: Any) -> Any:
    """Strict JSON: NaN/inf become null, in nested dicts and lists too."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    return v


def strict_json(v: Any, **kw) -> str:
    """JSON without NaN/Infinity (which JSON does not have): they are written as null."""
    return json.dumps(finite(v), allow_nan=False, **kw)


# ---------------------------------------------------------------------------------------------
# Reading a prompt's outputs


@dataclass
class ImageRef:
    """A saved image as the outputs name it (ComfyUI's output folder, subfolder, file name)."""

    filename: str
    subfolder: str = ""


def read_outputs(outputs: dict, measure_ids: list[str], taps: dict[str, str] | None = None,
                 ) -> tuple[list[ImageRef], dict[str, str]]:
    """Saved images (in node order; previews left out) and each Measure node's JSON text.

    ``outputs`` is ``{node id: ui output}`` as /history reports it. A Measure node's JSON comes
    from its own ``ui["style_guidance"]`` where it sends one, else from the tap node showing its
    JSON output (``taps``: {measure id: tap id}); ids found in neither are left out.
    """
    from .prompts import id_key

    images = []
    for nid in sorted(outputs, key=id_key):
        for img in (outputs[nid] or {}).get("images", []) or []:
            if isinstance(img, dict) and img.get("type", "output") == "output" and img.get("filename"):
                images.append(ImageRef(str(img["filename"]), str(img.get("subfolder") or "")))
    measures = {}
    for nid in measure_ids:
        text = _ui_text((outputs.get(nid) or {}).get(MEASURE_UI_KEY))
        if text is None and taps and taps.get(nid):
            text = _ui_text((outputs.get(taps[nid]) or {}).get("text"))
        if text is not None:
            measures[nid] = text
    return images, measures


def _ui_text(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, dict):
        return json.dumps(value)
    return value if isinstance(value, str) else None


def parse_measure(payload: str | dict) -> dict:
    """A Measure node's JSON, in the version-5 layout whichever version it came in.

    Version 5: ``{"version": 5, "total", "terms": [{"name", "kind", "value", "weight",
    "weight_share", "share", "effect", "spread", "note"}], "quality": {"LPIPS", "CFSD", "note"}, "cosines": [{"a", "b",
    "cosine"}]}`` (``effect``, ``spread`` and ``cosines`` are None / empty where the payload predates them: version 4); version 3 is the
    same with the old term kinds (``content_mse``, ``zecon``, ``zecon_model``,
    ``attention_distillation``), read as the current ones; version 2 is version 3 without
    "quality" (read as all None). Version 1 (no "version" key) is ``{term: value, ..., "total": t}``;
    its terms get None for what it did not report. Raises ValueError otherwise.
    """
    data = json.loads(payload) if isinstance(payload, str) else payload
    if not isinstance(data, dict):
        raise ValueError("the Measure node's JSON is not an object")
    if "version" not in data:
        terms = [{"name": current_term_name(k), "kind": None, "value": _num(v), "weight": None, "weight_share": None,
                  "share": None, "effect": None, "spread": None, "note": None} for k, v in data.items() if k != "total"]
        return {"version": 1, "total": _num(data.get("total")), "terms": terms, "quality": _quality(None),
                "cosines": []}
    if not isinstance(data.get("terms"), list):
        raise ValueError(f"the Measure node's JSON (version {data.get('version')}) has no 'terms' list")
    terms = []
    for t in data["terms"]:
        if not isinstance(t, dict) or "name" not in t:
            raise ValueError("a term of the Measure node's JSON has no name")
        # Old kinds are never current ones, so mapping every payload's names is safe.
        name, kind = current_term_name(t["name"]), t.get("kind")
        kind = current_term_name(kind) if isinstance(kind, str) else kind
        terms.append({"name": name, "kind": kind, "value": _num(t.get("value")),
                      "weight": _num(t.get("weight")), "weight_share": _num(t.get("weight_share")),
                      "share": _num(t.get("share")), "effect": _num(t.get("effect")),
                      "spread": _num(t.get("spread")), "note": t.get("note")})
    cosines = [{"a": current_term_name(str(c.get("a"))), "b": current_term_name(str(c.get("b"))),
                "cosine": _num(c.get("cosine"))}
               for c in data.get("cosines") or [] if isinstance(c, dict)]
    return {"version": data["version"], "total": _num(data.get("total")), "terms": terms,
            "quality": _quality(data.get("quality")), "cosines": cosines}


def _quality(q: Any) -> dict:
    """A version-3 "quality" object with every declared field (None where absent or not a number)."""
    q = q if isinstance(q, dict) else {}
    out = {k: _num(q.get(k)) for k in MEASURE_QUALITY_FIELDS if k != "note"}
    note = q.get("note")
    out["note"] = note if isinstance(note, str) else None
    return out


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# losses.csv / losses.json


def losses_csv(pairs: list, measure_titles: dict[str, str]) -> str:
    """One row per finished pair: its files, then per Measure node the total, each term's
    value, weight, share and effect (columns ``<term>``, ``<term>.weight``, ``<term>.share``,
    ``<term>.effect``) and the
    quality scores it reported (``LPIPS``, ``CFSD``); with several Measure nodes each column
    starts with ``<node id>/``."""
    several = len(measure_titles) > 1
    columns: list[tuple[str, str, str]] = []  # (node id, term or "", field)
    for nid in measure_titles:
        columns.append((nid, "", "total"))
        seen: list[str] = []
        for p in pairs:
            for m in p.measures:
                if m["node"] == nid:
                    seen += [t["name"] for t in m["terms"] if t["name"] not in seen]
        for name in seen:
            columns += [(nid, name, "value"), (nid, name, "weight"), (nid, name, "share"), (nid, name, "effect")]
        for score in (k for k in MEASURE_QUALITY_FIELDS if k != "note"):
            if any(m["node"] == nid and (m.get("quality") or {}).get(score) is not None for p in pairs for m in p.measures):
                columns.append((nid, "", score))

    def header(nid: str, term: str, what: str) -> str:
        base = what if not term else term if what == "value" else f"{term}.{what}"
        return f"{nid}/{base}" if several else base

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["content", "style", "name", "status", "seconds", *[header(*c) for c in columns], "error"])
    for p in pairs:
        by_node = {m["node"]: m for m in p.measures}
        row = []
        for nid, term, what in columns:
            m = by_node.get(nid)
            if m is None:
                row.append("")
            elif not term:
                row.append(_csv_num(m["total"] if what == "total" else (m.get("quality") or {}).get(what)))
            else:
                t = next((t for t in m["terms"] if t["name"] == term), None)
                row.append("" if t is None else _csv_num(t.get(what)))
        w.writerow([str(p.content), str(p.style), p.name, p.status, f"{p.seconds:.2f}", *row, p.error])
    return buf.getvalue()


def _csv_num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def losses_doc(pairs: list, info: dict) -> dict:
    """losses.json: the run's settings and every pair with all it reported."""
    return {
        **info,
        "pairs": [{"content": str(p.content), "style": str(p.style), "name": p.name, "status": p.status,
                   "seconds": round(p.seconds, 3), "server": p.server, "outputs": p.outputs,
                   "error": p.error or None, "attempts": p.attempts, "measures": p.measures,
                   "steps": len(p.steps)} for p in pairs],
    }


def write_losses(out_dir: Path, pairs: list, measure_titles: dict[str, str], info: dict) -> None:
    """losses.csv and losses.json for ``pairs`` (each rewritten whole, atomically)."""
    write_atomic(out_dir / "losses.csv", losses_csv(pairs, measure_titles).encode("utf-8"))
    write_atomic(out_dir / "losses.json", strict_json(losses_doc(pairs, info), indent=1).encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Per-step events


def step_events(messages: list) -> list[dict]:
    """The guidance step events among (event, data) messages, in order."""
    return [dict(d) for ev, d in messages if ev == STEP_EVENT and isinstance(d, dict)]


def write_steps(json_path: Path, png_path: Path, events: list[dict], title: str,
                warn: Callable[[str], None] | None = None) -> list[Path]:
    """``<name>.steps.json`` (the events) and, where matplotlib is installed, ``<name>.steps.png``.

    A plot that cannot be drawn is a note (``warn``), not a failure: the events are the record.
    Both files or neither: the JSON is removed again when the picture cannot be written.
    """
    from .plots import plot_steps

    try:
        png = plot_steps(events, title)
    except Exception as e:  # matplotlib's own errors on odd input; the JSON still holds everything
        png = None
        if warn is not None:
            warn(f"note: {json_path.name}: no step plot ({type(e).__name__}: {e})")
    write_atomic(json_path, strict_json({"event": STEP_EVENT, "events": events}, indent=1).encode("utf-8"))
    written = [json_path]
    if png is not None:
        try:
            write_atomic(png_path, png)
        except BaseException:
            json_path.unlink(missing_ok=True)
            raise
        written.append(png_path)
    return written
