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
                     "zero_gradient", "scale")
"""Keys of a step event's data: the sampler node's id, the prompt, the running evaluation number,
the sampling step it belongs to, the fraction of the schedule done, sigma, the weighted total, the
terms (``{name: {"value", "weight", "share"}}``; the weight this step used, its schedule applied),
the names of terms whose gradient was zero, and the guidance scale this step used (its schedule
applied). Readers treat "scale" as optional: events before it have none."""

STEP_TERM_FIELDS = ("value", "weight", "share")
"""Keys of each term of a step event."""

# ---------------------------------------------------------------- the Measure node
MEASURE_UI_KEY = "style_guidance"
"""Key of the Measure node's structured payload in its ``ui`` output (a one-element list of JSON)."""

MEASURE_VERSION = 3
"""Version of that payload: ``{"version": 3, "total", "terms": [{MEASURE_TERM_FIELDS}],
"quality": {MEASURE_QUALITY_FIELDS}}``. Version 2 had no "quality"; version 1 (no "version" key)
was ``{term: value, ..., "total": t}``; readers accept all three."""

MEASURE_TERM_FIELDS = ("name", "kind", "value", "weight", "weight_share", "share", "note")
"""Keys of each term of a Measure payload (versions 2 and 3)."""

MEASURE_QUALITY_FIELDS = ("LPIPS", "CFSD", "note")
"""Keys of a version-3 payload's "quality": the evaluation protocol's pairwise scores of the picture
against its content picture (null when not computed) and a note (what was computed with which files,
or why nothing was)."""

__all__ = ["MEASURE_QUALITY_FIELDS", "MEASURE_TERM_FIELDS", "MEASURE_UI_KEY", "MEASURE_VERSION", "STEP_EVENT",
           "STEP_EVENT_FIELDS", "STEP_TERM_FIELDS"]
