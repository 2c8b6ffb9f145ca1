"""Find and read the protocol's three networks' weights from ComfyUI model folders; never download.

Where each file is looked for, in ``<models>`` (``--models DIR``, else ``<ComfyUI>/models``):

- ``evaluation/art_inception.pth``: the art-trained Inception v3 of ArtFID
  (https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth).
- ``evaluation/alexnet-owt-7be5be79.pth``: torchvision's AlexNet
  (https://download.pytorch.org/models/alexnet-owt-7be5be79.pth), LPIPS's trunk.
- ``vgg/vgg19-dcbee923.pth``: torchvision's VGG19, the file the pack's VGG loader already uses
  (https://download.pytorch.org/models/vgg19-dcbee923.pth); a ``.safetensors`` copy also works.
- LPIPS v0.1 linear heads: ``evaluation/lpips_v0.1_alex.pth`` if present, else the ``alex.pth``
  that ships inside the ``lpips`` package (it is in requirements.txt).

Files are read with safetensors or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

INCEPTION = "art_inception.pth"
ALEXNET = "alexnet-owt-7be5be79.pth"
VGG19 = "vgg19-dcbee923.pth"
LPIPS_HEADS = "lpips_v0.1_alex.pth"
EVAL_FOLDER = "evaluation"
VGG_FOLDER = "vgg"

SOURCES = {
    INCEPTION: "https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth",
    ALEXNET: "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    VGG19: "https://download.pytorch.org/models/vgg19-dcbee923.pth",
    LPIPS_HEADS: "the lpips package (it is in requirements.txt): lpips/weights/v0.1/alex.pth",
}


class WeightsMissing(FileNotFoundError):
    """A weight file is not where it is looked for; the message names the file, folder and source."""


@dataclass(frozen=True)
class WeightFile:
    """A located weight file with its SHA-256 (reported beside the scores)."""

    role: str
    path: Path
    sha256: str


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _find(models: Path, folder: str, names: tuple[str, ...], role: str, source_key: str) -> WeightFile:
    where = models / folder
    for name in names:
        if (where / name).is_file():
            return WeightFile(role, where / name, sha256(where / name))
    raise WeightsMissing(
        f"{role}: '{names[0]}' not found in {where}. Put the file there (get it from "
        f"{SOURCES[source_key]}); nothing is downloaded at run time."
    )


def _lpips_heads(models: Path) -> WeightFile:
    own = models / EVAL_FOLDER / LPIPS_HEADS
    if own.is_file():
        return WeightFile("LPIPS v0.1 alex heads", own, sha256(own))
    try:
        import lpips  # only for the location of the heads it ships; its code is not used
    except ImportError:
        raise WeightsMissing(
            f"LPIPS v0.1 alex heads: '{LPIPS_HEADS}' not in {models / EVAL_FOLDER} and the lpips package "
            "is not installed (it is in requirements.txt): install it, or copy its weights/v0.1/alex.pth there under that name"
        ) from None
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    if not path.is_file():
        raise WeightsMissing(f"LPIPS v0.1 alex heads: the lpips package has no {path}")
    return WeightFile("LPIPS v0.1 alex heads", path, sha256(path))


def locate(models: Path) -> dict[str, WeightFile]:
    """All four files, or WeightsMissing naming every missing one."""
    found, errors = {}, []
    for key, fn in (
        ("inception", lambda: _find(models, EVAL_FOLDER, (INCEPTION, "art_inception.safetensors"),
                                    "ArtFID Inception", INCEPTION)),
        ("alexnet", lambda: _find(models, EVAL_FOLDER, (ALEXNET, "alexnet.safetensors"), "LPIPS AlexNet", ALEXNET)),
        ("vgg19", lambda: _find(models, VGG_FOLDER, (VGG19, "vgg19.safetensors"), "CFSD VGG19", VGG19)),
        ("lpips_heads", lambda: _lpips_heads(models)),
    ):
        try:
            found[key] = fn()
        except WeightsMissing as e:
            errors.append(str(e))
    if errors:
        raise WeightsMissing("\n".join(errors))
    return found


def read(path: Path, what: str) -> dict[str, Tensor]:
    """A tensor dict from .safetensors or a plain-weights torch file (the pack's safe reader)."""
    from losses.vgg import read_state_dict

    return read_state_dict(str(path), what)

