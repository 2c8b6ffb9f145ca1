"""What the pack tells whoever drives it (the headless runner, tests, a browser): names and schemas.

One definition for both sides, so they cannot drift apart:

- the step event the sampler sends once per guided evaluation (``PromptServer.send_sync``);
- the Measure node's structured ``ui`` payload: its key and its version.

Stdlib only, importing nothing, because two different importers load this one file:

- the pack, as ComfyUI's custom-node loader imports it (a package under ``custom_nodes``):
  ``from ..protocol import STEP_EVENT`` in ``sampler/`` and ``nodes/``;
- the runner, ``headless/``, a separate top-level package that must work without torch and
  without importing the pack (whose ``__init__`` wants ComfyUI): ``headless/protocol.py`` loads
  this file by its path under its own module name. A path load rather than importing the pack's
  folders as top-level packages: ``nodes`` would clash with ComfyUI's own top-level ``nodes``
  module, and nothing else of the pack gets imported by accident.
"""

from __future__ import annotations

# ---------------------------------------------------------------- step events
STEP_EVENT = "style_guidance.step"
"""Event name of one guided evaluation, sent to the prompt's client."""

STEP_EVENT_FIELDS = ("node", "prompt_id", "evaluation", "step", "fraction", "sigma", "total", "terms",
                     "zero_gradient", "scale", "cosines")
"""Keys of a step event's data: the sampler node's id, the prompt, the running evaluation number,
the sampling step it belongs to, the fraction of the schedule done, sigma, the weighted total, the
terms (``{name: {"value", "weight", "share"}}``; the weight this step used, its schedule applied),
the names of terms whose gradient was zero, the guidance scale this step used (its schedule
applied), and the cosine of each pair of terms' pulls (``[{"a", "b", "cosine"}]``, as Measure's).
Readers treat "scale" and "cosines" as optional: older events have none."""

STEP_TERM_FIELDS = ("value", "weight", "share", "effect")
"""Keys of each term of a step event: the value, the weight used, its share of the direction and its effect (the
first-order progress of its own loss under the step, on the share's scale; null without a gradient). Readers
treat "effect" as optional: older events have none."""

# ---------------------------------------------------------------- the Measure node
MEASURE_UI_KEY = "style_guidance"
"""Key of the Measure node's structured payload in its ``ui`` output (a one-element list of JSON)."""

MEASURE_VERSION = 5
"""Version of that payload: ``{"version": 5, "total", "terms": [{MEASURE_TERM_FIELDS}],
"quality": {MEASURE_QUALITY_FIELDS}, "cosines": [{MEASURE_COSINE_FIELDS}]}``. Version 4 had no
"effect" or "spread" per term and no "cosines"; version 3 was version 4 with the old term kinds
(``LEGACY_TERM_KINDS``); version 2 had no "quality"; version 1 (no "version" key) was
``{term: value, ..., "total": t}``; readers accept all five and map old kinds to new."""

MEASURE_TERM_FIELDS = ("name", "kind", "value", "weight", "weight_share", "share", "effect", "spread", "note")
"""Keys of each term of a Measure payload (version 5; versions 2-4 had no "effect" and no "spread": the value's
standard deviation over the batch, null for one sample)."""

MEASURE_COSINE_FIELDS = ("a", "b", "cosine")
"""Keys of each pair in a version-5 payload's "cosines": two terms' names and the cosine of their pulls."""

MEASURE_QUALITY_FIELDS = ("LPIPS", "CFSD", "note")
"""Keys of a version-3 payload's "quality": the evaluation protocol's pairwise scores of the picture
against its content picture (null when not computed) and a note (what was computed with which files,
or why nothing was)."""

# ---------------------------------------------------------------- term kinds
TERM_KINDS = {
    "pixel_mse_content": ("StyleGuidanceContentMSE", "Pixel MSE"),
    "vgg_content": ("StyleGuidanceVGGContent", "VGG"),
    "vgg_patchnce_content": ("StyleGuidanceZeCon", "VGG PatchNCE"),
    "clip_style": ("StyleGuidanceCLIPStyle", "CLIP"),
    "gram_style": ("StyleGuidanceGramStyle", "Gram"),
    "range": ("StyleGuidanceRange", "Range"),
    "temporal_consistency": ("StyleGuidanceTemporalConsistency", "Temporal Consistency"),
    "zecon_content": ("StyleGuidanceModelZeCon", "ZeCon"),
    "attention_distillation_style": ("StyleGuidanceAttentionDistillation", "Attention Distillation"),
}
"""Each loss term's kind -> (the node that makes it, a short label for one-line progress text).

One name per term: a kind is its node's title without "Loss (Style Guidance)", lower case, words
joined by "_" (:func:`kind_of_title`), so "VGG PatchNCE Content Loss" reports
``vgg_patchnce_content``. A term's default name (step events, Measure, plots) is its kind, with
"#2", "#3", ... for repeats. The node ids stay as they were: saved workflows store them."""

LEGACY_TERM_KINDS = {
    "content_mse": "pixel_mse_content",
    "zecon": "vgg_patchnce_content",
    "zecon_model": "zecon_content",
    "attention_distillation": "attention_distillation_style",
}
"""Kinds before Measure payload version 4 -> the current ones. No old kind is a current kind, so
an old name maps to one term whatever file (versioned or not) it came from."""


def kind_of_title(display_name: str) -> str:
    """The term kind a loss node's title gives: "Gram Style Loss (Style Guidance)" -> "gram_style"."""
    words = display_name.replace("(Style Guidance)", "").split()
    if words and words[-1] == "Loss":
        words = words[:-1]
    return "_".join("".join(c for c in w.lower() if c.isalnum()) for w in words)


def current_term_name(name: str) -> str:
    """A term name (kind, optionally "#n") with an old kind mapped to the current one."""
    base, sep, rest = str(name).partition("#")
    return LEGACY_TERM_KINDS.get(base, base) + sep + rest


def term_label(name: str) -> str:
    """A term's short label for progress text: "vgg_patchnce_content#2" -> "VGG PatchNCE #2"."""
    base, sep, rest = current_term_name(name).partition("#")
    label = TERM_KINDS[base][1] if base in TERM_KINDS else base
    return f"{label} #{rest}" if sep else label


__all__ = ["LEGACY_TERM_KINDS", "TERM_KINDS", "current_term_name", "kind_of_title", "term_label",
           "MEASURE_COSINE_FIELDS", "MEASURE_QUALITY_FIELDS", "MEASURE_TERM_FIELDS", "MEASURE_UI_KEY",
           "MEASURE_VERSION", "STEP_EVENT",
           "STEP_EVENT_FIELDS", "STEP_TERM_FIELDS"]
