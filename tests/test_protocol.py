"""The pack's messages to whoever drives it have exactly the fields that ``protocol.py`` declares.

The runner and the browser read step events and the Measure payload by these names; a field
added or renamed on one side only would break them silently, so a real guided run is checked
against the declaration here.
"""

from __future__ import annotations

import json

import pytest

from headless import protocol as P
from headless.testbed import graphs as G

pytestmark = pytest.mark.compat  # also run against the newer ComfyUI tree (.ci/run)

# The longest progress line: the longest label, 100% and a 3-digit step count fit a sampler node's width.
PROGRESS_TEXT_MAX = 56


def test_step_events_and_measure_payload_match_the_declared_fields(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    last = G.add_all_losses(g)
    G.add_guided_sampler(g, "guided", last, G.guidance_options(scale=1.0), G.sampling(steps=2))
    _, measure = G.add_decode_measure(g, "g", "guided", last)
    result = comfy.run(g)

    steps = [data for event, data in result.messages if event == P.STEP_EVENT]
    assert len(steps) == 2, [event for event, _ in result.messages]
    for data in steps:
        assert tuple(data) == P.STEP_EVENT_FIELDS, sorted(data)
        assert data["node"] == "guided"
        assert data["terms"], data
        for name, term in data["terms"].items():
            assert tuple(term) == P.STEP_TERM_FIELDS, (name, sorted(term))

    # The node's progress text: one short line per step, naming the term that steers most by its
    # node's label; everything else is in the step event.
    texts = [data["text"] for event, data in result.messages if event == "progress_text" and data["node"] == "guided"]
    assert len(texts) == len(steps), texts
    for i, (text, data) in enumerate(zip(texts, steps, strict=True)):
        lead = max(data["terms"], key=lambda n: abs(data["terms"][n]["share"]))
        share = data["terms"][lead]["share"]
        assert text == f"step {i + 1}/2, led by {P.term_label(lead)} ({share:.0%})", text
        assert "\n" not in text and len(text) <= PROGRESS_TEXT_MAX, text

    (payload,) = result.outputs[measure][P.MEASURE_UI_KEY]
    report = json.loads(payload) if isinstance(payload, str) else payload
    assert report["version"] == P.MEASURE_VERSION
    assert {t["name"] for t in report["terms"]} == set(steps[0]["terms"])
    for term in report["terms"]:
        assert tuple(term) == P.MEASURE_TERM_FIELDS, sorted(term)
    n = len(report["terms"])
    assert len(report["cosines"]) == n * (n - 1) // 2
    for pair in report["cosines"]:
        assert tuple(pair) == P.MEASURE_COSINE_FIELDS, sorted(pair)


def test_the_runner_reads_the_pack_own_declaration():
    """``headless/protocol.py`` loads the pack's file rather than repeating it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("sg_protocol_check", Path(__file__).parents[1] / "protocol.py")
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    for name in pack.__all__:
        ours, theirs = getattr(P, name), getattr(pack, name)
        if callable(ours):  # two loads of one file: the same code, not the same object
            assert ours.__code__.co_code == theirs.__code__.co_code, name
        else:
            assert ours == theirs, name


def test_progress_line_fits_for_every_term():
    """The longest line the sampler can show (a 3-digit step count, the longest label, 100%) stays short."""
    longest = max((P.term_label(k) for k in P.TERM_KINDS), key=len) + " #2"
    assert len(f"step 100/100, led by {longest} (100%)") <= PROGRESS_TEXT_MAX
