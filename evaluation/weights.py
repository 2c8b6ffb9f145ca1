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


_HASHES: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> hash: a file is read once per change


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (remembered while its time and size stay the same)."""
    st = Path(path).stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in _HASHES:
        return _HASHES[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _dirs_text(dirs: list[Path]) -> str:
    return " or ".join(str(d) for d in dirs)


def _find(dirs: list[Path], names: tuple[str, ...], role: str, source_key: str) -> WeightFile:
    for where in dirs:
        for name in names:
            if (where / name).is_file():
                return WeightFile(role, where / name, sha256(where / name))
    raise WeightsMissing(
        f"{role}: '{names[0]}' not found in {_dirs_text(dirs)}. Put the file there (get it from "
        f"{SOURCES[source_key]}); nothing is downloaded at run time."
    )


def _lpips_heads(dirs: list[Path]) -> WeightFile:
    for where in dirs:
        if (where / LPIPS_HEADS).is_file():
            return WeightFile("LPIPS v0.1 alex heads", where / LPIPS_HEADS, sha256(where / LPIPS_HEADS))
    try:
        import lpips  # only for the location of the heads it ships; its code is not used
    except ImportError:
        raise WeightsMissing(
            f"LPIPS v0.1 alex heads: '{LPIPS_HEADS}' not in {_dirs_text(dirs)} and the lpips package "
            "is not installed (it is in requirements.txt): install it, or copy its weights/v0.1/alex.pth there under that name"
        ) from None
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    if not path.is_file():
        raise WeightsMissing(f"LPIPS v0.1 alex heads: the lpips package has no {path}")
    return WeightFile("LPIPS v0.1 alex heads", path, sha256(path))


ALL = ("inception", "alexnet", "vgg19", "lpips_heads")


def locate_in(folders: dict[str, list[Path]], keys: tuple[str, ...] = ALL) -> dict[str, WeightFile]:
    """The files named by ``keys`` (of :data:`ALL`), searched in ``folders`` ({EVAL_FOLDER: [dirs],
    VGG_FOLDER: [dirs]}, e.g. every folder ComfyUI registers under those names), or WeightsMissing
    naming every missing one with the folders searched and where to get it."""
    ev, vg = list(folders.get(EVAL_FOLDER, [])), list(folders.get(VGG_FOLDER, []))
    finders = {
        "inception": lambda: _find(ev, (INCEPTION, "art_inception.safetensors"), "ArtFID Inception", INCEPTION),
        "alexnet": lambda: _find(ev, (ALEXNET, "alexnet.safetensors"), "LPIPS AlexNet", ALEXNET),
        "vgg19": lambda: _find(vg, (VGG19, "vgg19.safetensors"), "CFSD VGG19", VGG19),
        "lpips_heads": lambda: _lpips_heads(ev),
    }
    found, errors = {}, []
    for key in keys:
        try:
            found[key] = finders[key]()
        except WeightsMissing as e:
            errors.append(str(e))
    if errors:
        raise WeightsMissing("\n".join(errors))
    return found


def locate(models: Path) -> dict[str, WeightFile]:
    """All four files under one models folder (``<models>/evaluation``, ``<models>/vgg``), or WeightsMissing."""
    return locate_in({EVAL_FOLDER: [models / EVAL_FOLDER], VGG_FOLDER: [models / VGG_FOLDER]})


def losses_vgg():
    """The pack's ``losses.vgg`` module, whether this package is top-level (headless, benchmarks) or
    inside the pack as ComfyUI imports it (``<pack>.evaluation``)."""
    if __package__ and "." in __package__:
        from ..losses import vgg
    else:
        from losses import vgg
    return vgg


def read(path: Path, what: str) -> dict[str, Tensor]:
    """A tensor dict from .safetensors or a plain-weights torch file (the pack's safe reader)."""
    return losses_vgg().read_state_dict(str(path), what)

