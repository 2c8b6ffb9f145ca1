"""Issue 23, item 5: LPIPS and CFSD as optional scores of the Measure node, through ComfyUI's executor.

Stand-in weights (seeded random AlexNet, LPIPS heads and VGG19 under their real file names,
evaluation/standins.py) sit in extra model folders registered with ComfyUI for this module only;
nothing is downloaded. The scores must be 0 for the content picture itself, grow with a
perturbation, agree with the folder evaluation on the saved pair, and a missing file is named
with the folders searched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from headless import protocol as P
from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed

pytestmark = pytest.mark.compat

ALEXNET = "alexnet-owt-7be5be79.pth"


@pytest.fixture(scope="module")
def eval_folders(comfy_base, tmp_path_factory):
    """Stand-in protocol weights in an extra 'evaluation' and 'vgg' folder (removed again after the module)."""
    import folder_paths

    from evaluation.standins import write_standins
    from evaluation.weights import EVAL_FOLDER, INCEPTION, VGG_FOLDER

    root = tmp_path_factory.mktemp("quality_models")
    src = tmp_path_factory.mktemp("quality_src")
    write_standins(src, seed=0)
    for folder in (EVAL_FOLDER, VGG_FOLDER):
        shutil.copytree(src / folder, root / folder, ignore=shutil.ignore_patterns(INCEPTION))
        folder_paths.add_model_folder_path(folder, str(root / folder))
    folder_paths.filename_list_cache.clear()
    yield root
    for folder in (EVAL_FOLDER, VGG_FOLDER):
        folder_paths.folder_names_and_paths[folder][0].remove(str(root / folder))
    folder_paths.filename_list_cache.clear()


def _graph(models: dict, blend: float | None, quality: str = "LPIPS + CFSD", content: bool = True) -> dict:
    g = G.base_graph(models)
    g = {k: g[k] for k in ("content", "style")}
    last = G.add_all_losses(g, terms=("mse",))
    image = "content"
    if blend is not None:  # the content picture mixed with another picture: a perturbation of known size
        g["mix"] = {"class_type": "ImageBlend", "inputs": {"image1": G.link("content"), "image2": G.link("other"),
                                                           "blend_factor": blend, "blend_mode": "normal"}}
        g["other"] = {"class_type": "SGTestImage", "inputs": {"width": G.SIZE, "height": G.SIZE, "seed": 3,
                                                              "batch_size": 1}}
        image = "mix"
    g["m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {
        "image": G.link(image), "losses": G.link(last), "seed": 0, "quality": quality}}
    if content:
        g["m"]["inputs"]["content"] = G.link("content")
    return g


def _report(comfy) -> dict:
    return json.loads(comfy.output("m", 1))


def test_lpips_and_cfsd_are_zero_on_the_content_and_grow_with_a_perturbation(comfy, tiny_models, eval_folders):
    seen = []
    for blend in (None, 0.1, 0.4):
        result = comfy.run(_graph(tiny_models, blend))
        report = _report(comfy)
        q = report["quality"]
        assert report["version"] == P.MEASURE_VERSION == 5 and tuple(q) == P.MEASURE_QUALITY_FIELDS
        outputs = comfy.node_output("m")
        lpips_out, cfsd_out = outputs[-3][0], outputs[-2][0]  # then the later kinds (temporal_consistency)
        assert (lpips_out, cfsd_out) == (pytest.approx(q["LPIPS"]), pytest.approx(q["CFSD"]))
        text = result.outputs["m"]["text"][0]
        assert "LPIPS to content" in text and "CFSD to content" in text and ALEXNET in q["note"]
        seen.append((q["LPIPS"], q["CFSD"]))
        print(f"\nblend {blend}: LPIPS {q['LPIPS']:.6g}, CFSD {q['CFSD']:.6g}")
    (l0, c0), (l1, c1), (l2, c2) = seen
    assert l0 == pytest.approx(0.0, abs=1e-7) and c0 == pytest.approx(0.0, abs=1e-12)
    assert 1e-5 < l1 < l2 and 0.0 < c1 < c2 and c1 > 1e3 * abs(c0)


def test_scores_equal_the_folder_evaluation_of_the_saved_pair(comfy, tiny_models, eval_folders, tmp_path):
    """The node scores the picture as SaveImage would write it, exactly as `headless evaluate` scores the files."""
    import numpy as np
    from PIL import Image

    from evaluation.pairwise import PAIRWISE, load_pairwise, pair_scores
    from evaluation.weights import EVAL_FOLDER, VGG_FOLDER

    comfy.run(_graph(tiny_models, 0.4))
    q = _report(comfy)["quality"]
    files = {}
    for node in ("mix", "content"):
        a = comfy.output(node)[0].cpu().numpy()
        files[node] = Image.fromarray(np.clip(255.0 * a, 0, 255).astype(np.uint8))
        files[node].save(tmp_path / f"{node}.png")
    import folder_paths

    # the folders in ComfyUI's order, as the node searches them (the base's own vgg folder holds a
    # stand-in under the shipped workflows' name vgg19-dcbee923.pth, found first)
    where = {name: [Path(p) for p in folder_paths.get_folder_paths(name)] for name in (EVAL_FOLDER, VGG_FOLDER)}
    nets = load_pairwise(where, PAIRWISE)
    assert nets.files["vgg19"].sha256[:8] in q["note"] and nets.files["alexnet"].sha256[:8] in q["note"]
    ref, _ = pair_scores(nets, Image.open(tmp_path / "mix.png").convert("RGB"),
                         Image.open(tmp_path / "content.png").convert("RGB"), PAIRWISE)
    assert q["LPIPS"] == pytest.approx(ref["LPIPS"], rel=1e-6) and q["CFSD"] == pytest.approx(ref["CFSD"], rel=1e-6)


def test_off_by_default_computes_nothing(comfy, tiny_models, eval_folders):
    g = _graph(tiny_models, 0.4)
    del g["m"]["inputs"]["quality"]
    comfy.run(g)
    q = _report(comfy)["quality"]
    assert q == {"LPIPS": None, "CFSD": None, "note": None}
    assert comfy.node_output("m")[-3][0] == -1.0 and comfy.node_output("m")[-2][0] == -1.0  # LPIPS, CFSD


def test_quality_without_content_names_the_input(comfy, tiny_models, eval_folders):
    with pytest.raises(PromptFailed) as e:
        comfy.run(_graph(tiny_models, 0.4, content=False))
    assert "quality: LPIPS + CFSD compares the image with its content picture: connect 'content'" in str(e.value)


def test_a_missing_weight_file_is_named_with_its_folder(comfy, tiny_models, eval_folders):
    from evaluation.weights import EVAL_FOLDER

    path = eval_folders / EVAL_FOLDER / ALEXNET
    away = path.with_suffix(".away")
    path.rename(away)
    try:
        with pytest.raises(PromptFailed) as e:
            comfy.run(_graph(tiny_models, 0.1, quality="LPIPS"))
    finally:
        away.rename(path)
    msg = str(e.value)
    assert "quality 'LPIPS' needs weight files that are missing" in msg
    assert f"LPIPS AlexNet: '{ALEXNET}' not found in" in msg and str(eval_folders / EVAL_FOLDER) in msg, msg[:800]
    assert "download.pytorch.org/models/alexnet-owt-7be5be79.pth" in msg and "nothing is downloaded" in msg
    # CFSD alone needs only VGG19, so it still works without the AlexNet file
    path.rename(away)
    try:
        comfy.run(_graph(tiny_models, 0.1, quality="CFSD"))
    finally:
        away.rename(path)
    q = _report(comfy)["quality"]
    assert q["LPIPS"] is None and q["CFSD"] > 0


def test_headless_reads_the_quality_scores(comfy, tiny_models, eval_folders):
    from headless import results

    comfy.run(_graph(tiny_models, 0.4))
    parsed = results.parse_measure(comfy.output("m", 1))
    assert parsed["quality"]["LPIPS"] > 0 and parsed["quality"]["CFSD"] > 0
    assert results.parse_measure(json.dumps({"version": 2, "total": 1.0, "terms": []}))["quality"]["LPIPS"] is None
    # the losses table gains LPIPS/CFSD columns when a Measure node reported them
    from types import SimpleNamespace

    pair = SimpleNamespace(content=Path("c.png"), style=Path("s.png"), name="p", status="ok", seconds=1.0, error="",
                           measures=[{"node": "m", "title": "m", **parsed}])
    header, row = results.losses_csv([pair], {"m": "m"}).splitlines()
    cols = dict(zip(header.split(","), row.split(","), strict=True))
    assert float(cols["LPIPS"]) == pytest.approx(parsed["quality"]["LPIPS"])
    assert float(cols["CFSD"]) == pytest.approx(parsed["quality"]["CFSD"])
