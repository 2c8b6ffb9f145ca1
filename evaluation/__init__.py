"""The style-transfer evaluation protocol (ArtFID, FID, LPIPS, CFSD) as StyleID/ArtFID define it.

Pure PyTorch, no ComfyUI import. Definitions: docs/evaluation.md. Entry points:
:func:`evaluation.protocol.evaluate_folders` and ``python -m headless evaluate``.
"""

from .fid import frechet_distance, gaussian_stats
from .pairing import Pair, PairingResult, pair_images

__all__ = ["Pair", "PairingResult", "frechet_distance", "gaussian_stats", "pair_images"]
