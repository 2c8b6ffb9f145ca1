"""Which model files a workflow needs that its ComfyUI cannot load, said once for both back ends.

In-process a file is there when ComfyUI finds it in its model folders (a TAESD pair when the
VAE loader offers its name); on a server when the loader offers it in its choice list
(``/object_info``), which is what the server's validation checks too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .prompts import title
from .testbed.standins.names import TAESD_NAMES, model_files


@dataclass
class Missing:
    file: str  # what to put there
    folder: str  # where (a path, or a description for a server)
    node: str  # which node asks for it


def combo_options(spec: Any) -> list | None:
    """The choices of a COMBO input spec (old list form or ``("COMBO", {"options": [...]})``)."""
    if isinstance(spec, (list, tuple)) and spec:
        if isinstance(spec[0], (list, tuple)):
            return list(spec[0])
        if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            return list(spec[1].get("options") or [])
    return None


def offered(input_types: dict, input_name: str, file_name: str) -> bool:
    """Whether a loader's input (as ``INPUT_TYPES()``/``object_info`` give it) offers ``file_name``.

    True too when the input is not a choice list (nothing to check against).
    """
    spec = (input_types.get("required") or {}).get(input_name) or (input_types.get("optional") or {}).get(input_name)
    options = combo_options(spec)
    return options is None or file_name in options


def missing_models(api: dict, present: Callable[[str, str, str, str], bool],
                   folder_of: Callable[[str], str]) -> list[Missing]:
    """Model files named in ``api`` that ComfyUI cannot load.

    ``present(class_type, input name, file name, model type)`` says whether a file is there;
    ``folder_of(model type)`` where files of that type go. A TAESD name ('taesd', ...) on a
    VAELoader stands for an encoder + decoder pair in ``vae_approx``.
    """
    missing = []
    for nid, inp, name, folder in model_files(api):
        if present(api[nid]["class_type"], inp, name, folder):
            continue
        node = f"node {nid} {title(api[nid])!r}"
        if folder == "vae" and name in TAESD_NAMES:
            missing.append(Missing(f"{name}_encoder.safetensors + {name}_decoder.safetensors",
                                   folder_of("vae_approx"), node))
        else:
            missing.append(Missing(name, folder_of(folder), node))
    return missing


def missing_message(workflow_name: str, missing: list[Missing], hint: str) -> str:
    width = max(len(m.file) for m in missing)
    lines = [f"Missing model files: the workflow '{workflow_name}' needs {len(missing)} file(s) that are not there "
             "(nothing was run):"]
    lines += [f"  {m.file:<{width}}  ->  {m.folder}   ({m.node})" for m in missing]
    lines.append(hint)
    return "\n".join(lines)


def tiny_banner(real_missing: list[Missing] | None, forced: bool, server: bool = False,
                replaced: list[str] | None = None) -> str:
    """The TINY MODE line; ``replaced``: what tiny mode replaced (text encoders that cannot shrink, by
    conditioning; loaders of full-size builds, by test loaders), one line each."""
    why = "--tiny given" if forced else "no real model weights found"
    text = (f"TINY MODE: {why}, running on tiny random-weight stand-ins; the pictures are noise, not a style "
            "transfer.")
    for line in replaced or []:
        text += f" Replaced: {line}."
    if server:
        text += (" Server mode: only the workflow is shrunk (128 px, 4 steps, tiny open_clip); the servers must "
                 "hold the stand-ins under the workflow's file names.")
    elif real_missing:
        files = "; ".join(f"{m.file} in {m.folder}" for m in real_missing)
        text += f" To run the real thing put {files} - or pass --comfyui PATH (an install that has them)."
    return text
