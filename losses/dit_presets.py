"""Layer presets of the model-feature terms on DiTs (Flux, Flux.2, Chroma, Qwen-Image, SD3).

A DiT is a stack of blocks in forward order (``ModelLayout.blocks``: Flux's double blocks, then its
single blocks; the joint blocks of Qwen-Image and SD3). Presets speak of thirds of that stack:
*early*, *middle* and *late* blocks. ZeCon reads two blocks of a third (its middle and its last
block: a few feature maps, as ZeCon's five UNet levels); Attention Distillation reads every block of
the thirds it names. The UNet presets keep working on a DiT by analogy (the table in
docs/model_features.md): ZeCon's encoder levels are the early and middle thirds, AD's decoder layers
the late third.
"""

from __future__ import annotations

__all__ = ["AD_DIT_PRESETS", "UNET_ON_DIT", "ZECON_DIT_PRESETS", "dit_ad_layers", "dit_zecon_blocks", "thirds"]

EARLY, MIDDLE, LATE = "early", "middle", "late"

# The DiT presets as the node lists them (appended to the UNet ones; on a UNet they are refused).
ZECON_DIT_PRESETS = {
    "early blocks (DiT: 2 blocks of the first third; cheapest)": (EARLY,),
    "middle blocks (DiT: 2 blocks of the middle third)": (MIDDLE,),
    "late blocks (DiT: 2 blocks of the last third)": (LATE,),
}
AD_DIT_PRESETS = {
    "late blocks (DiT: every block of the last third)": (LATE,),
    "middle + late blocks (DiT)": (MIDDLE, LATE),
    "early blocks (DiT: the pass stops after them)": (EARLY,),
}
# The UNet presets read on a DiT (the first of each dict is the node's default, so defaults work on both).
UNET_ON_DIT = {
    "all levels (ZeCon: input blocks 0,2,5,8,11 on SD1.5)": (EARLY, MIDDLE),
    "fine levels (input blocks 0,2,5; cheapest)": (EARLY,),
    "coarse levels (input blocks 8,11 on SD1.5)": (MIDDLE,),
    "decoder, last 6 self-attentions (paper)": (LATE,),
    "decoder, all self-attentions": (MIDDLE, LATE),
    "encoder + middle self-attentions": (EARLY, MIDDLE),
    "all self-attentions": (EARLY, MIDDLE, LATE),
}


def thirds(n: int) -> dict[str, range]:
    """Block indices of the early, middle and late thirds of ``n`` blocks (each non-empty when n >= 3)."""
    if n < 3:  # tiny models: thirds overlap (early is the first block, late the last)
        return {EARLY: range(0, min(n, 1)), MIDDLE: range(n // 2, n // 2 + min(n, 1)), LATE: range(max(n - 1, 0), n)}
    a, b = round(n / 3), round(2 * n / 3)
    return {EARLY: range(0, a), MIDDLE: range(a, b), LATE: range(b, n)}


def _picks(r: range) -> tuple[int, ...]:
    """Two blocks of a third: its middle one and its last one (one when the third has one block)."""
    if len(r) == 0:
        return ()
    return tuple(sorted({r[(len(r) - 1) // 2], r[-1]}))


def _regions(preset: str, table: dict[str, tuple[str, ...]], who: str, family: str) -> tuple[str, ...]:
    regions = table.get(preset) or UNET_ON_DIT.get(preset)
    if regions is None:
        raise ValueError(f"{who}: the preset {preset!r} does not apply to the {family} DiT; choose one of "
                         f"{[*UNET_ON_DIT, *table]}")
    return regions


def dit_zecon_blocks(preset: str, n_blocks: int, who: str, family: str) -> tuple[int, ...]:
    """Forward-order block indices a ZeCon preset reads on a DiT of ``n_blocks`` blocks."""
    parts = thirds(n_blocks)
    blocks = sorted({i for reg in _regions(preset, ZECON_DIT_PRESETS, who, family) for i in _picks(parts[reg])})
    if not blocks:
        raise ValueError(f"{who}: the preset {preset!r} names no block of this {family} model ({n_blocks} blocks)")
    return tuple(blocks)


def dit_ad_layers(preset: str, n_blocks: int, who: str, family: str) -> tuple[int, ...]:
    """Forward-order block indices whose joint attention an AD preset reads on a DiT."""
    parts = thirds(n_blocks)
    blocks = sorted({i for reg in _regions(preset, AD_DIT_PRESETS, who, family) for i in parts[reg]})
    if not blocks:
        raise ValueError(f"{who}: the preset {preset!r} names no block of this {family} model ({n_blocks} blocks)")
    return tuple(blocks)

