"""One name per term: a loss node's title, its term kind, Measure's outputs and the plots agree.

Issue 21, item 4: "VGG PatchNCE Content Loss" reported its term as ``zecon`` and "ZeCon Content
Loss" as ``zecon_model``. The rule (``protocol.kind_of_title``): a kind is its node's title
without "Loss (Style Guidance)", lower case, joined by "_".
"""

from __future__ import annotations

import inspect

import pytest

from headless import protocol as P


def _node_classes(pack) -> dict:
    import importlib

    nodes = importlib.import_module(f"{pack.__name__}.nodes")
    return {cls.define_schema().node_id: cls for cls in nodes.collect_nodes()}


def _is_loss_node(cls) -> bool:
    schema = cls.define_schema()
    inputs = {i.id for i in schema.inputs}
    return "weight" in inputs and any(getattr(o, "io_type", None) == "GUIDANCE_LOSS" for o in schema.outputs)


def test_kind_of_title_rule():
    assert P.kind_of_title("VGG PatchNCE Content Loss (Style Guidance)") == "vgg_patchnce_content"
    assert P.kind_of_title("ZeCon Content Loss (Style Guidance)") == "zecon_content"
    assert P.kind_of_title("Range Loss (Style Guidance)") == "range"


def test_every_loss_node_title_gives_its_term_kind(pack):
    """A renamed node, or a term kind that drifts from its node's title, fails here."""
    mappings = _node_classes(pack)
    loss_nodes = {node_id for node_id, cls in mappings.items() if _is_loss_node(cls)}
    assert loss_nodes == {node for node, _ in P.TERM_KINDS.values()}, "every loss node has one kind in TERM_KINDS"
    for kind, (node_id, label) in P.TERM_KINDS.items():
        title = mappings[node_id].define_schema().display_name
        assert P.kind_of_title(title) == kind, (node_id, title, kind)
        assert title.startswith(label + " "), (title, label)  # the progress line's label is the title's start


def test_the_loss_classes_report_the_kinds(pack):
    """The kinds the terms report (step events, Measure) are exactly the declared ones."""
    import importlib

    terms = importlib.import_module(f"{pack.__name__}.losses.terms")
    bases = {terms.GuidanceLoss, terms.LatentGuidanceLoss}
    kinds = set()
    for module in ("losses", "losses.model_features"):
        found = inspect.getmembers(importlib.import_module(f"{pack.__name__}.{module}"), inspect.isclass)
        kinds |= {cls.kind for _, cls in found
                  if issubclass(cls, terms.GuidanceLoss) and cls not in bases and "kind" in vars(cls)}
    assert kinds == set(P.TERM_KINDS), kinds ^ set(P.TERM_KINDS)
    assert not set(P.LEGACY_TERM_KINDS) & set(P.TERM_KINDS), "an old kind must never name a current term"


def test_measure_outputs_are_named_by_the_kinds(pack):
    import importlib

    measure = importlib.import_module(f"{pack.__name__}.nodes.measure")
    names = [o.display_name for o in measure.StyleGuidanceMeasure.define_schema().outputs]
    assert names[3:3 + len(measure.KINDS)] == list(measure.KINDS)
    assert names[3 + len(measure.KINDS) + len(measure.QUALITY):] == list(measure.LATER_KINDS)  # appended after quality
    assert set(measure.KINDS) | set(measure.LATER_KINDS) == set(P.TERM_KINDS)
    # The slots stay where saved workflows expect them: old kind at each index -> today's kind.
    old = ("content_mse", "vgg_content", "zecon", "clip_style", "gram_style", "range", "zecon_model",
           "attention_distillation")
    assert tuple(P.current_term_name(k) for k in old) == measure.KINDS


@pytest.mark.parametrize("old,new", [("zecon", "vgg_patchnce_content"), ("zecon_model#2", "zecon_content#2"),
                                     ("gram_style", "gram_style")])
def test_old_names_map_to_new(old, new):
    assert P.current_term_name(old) == new
