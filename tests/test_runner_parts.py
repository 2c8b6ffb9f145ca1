"""The runner's parts that need no ComfyUI run: inputs, names, scheduling, results, plots, checks.

Each is checked on its own here; tests/test_runner.py runs the whole runner as a subprocess.
The few cases that need ComfyUI's node definitions or LoadImage use the session's in-process
ComfyUI (conftest) and say so.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import make_hostile_folder
from PIL import Image

from headless import cli, inputs, plots, prompts, results
from headless.backend import EXIT_CODES, EXIT_SETUP, SetupError
from headless.inputs import Pair, collect_images, make_pairs, output_path, safe_stem, unique_names
from headless.server import Scheduler
from headless.workflow import WorkflowError, check_api, check_ui

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"


# ---------------------------------------------------------------------------------------------
# Pairs and names


def test_zip_pairing_reports_unmatched(tmp_path):
    c = [tmp_path / "c1.jpg", tmp_path / "c2.jpg", tmp_path / "c3.jpg"]
    s = [tmp_path / "s1.png", tmp_path / "s2.png"]
    pairs, problems, _ = make_pairs(c, s, "zip")
    assert [p.name for p in pairs] == ["c1__s1", "c2__s2"]
    assert len(problems) == 1 and "c3.jpg" in problems[0]
    pairs, problems, _ = make_pairs(c, s, "product")
    assert len(pairs) == 6 and not problems
    pairs, _, _ = make_pairs([tmp_path / "x.jpg", tmp_path / "x.png"], s[:1], "product")
    assert [p.name for p in pairs] == ["x_jpg__s1", "x_png__s1"]  # one stem, two files: extensions kept


def test_colliding_pair_names_are_made_unique_and_said():
    """x + y__z and x__y + z would both be x__y__z: the second gets _2, with a note."""
    c, s = [Path("x.jpg"), Path("x__y.jpg")], [Path("y__z.jpg"), Path("z.jpg")]
    pairs, _, notes = make_pairs(c, s, "product")
    names = [p.name for p in pairs]
    assert len(set(n.casefold() for n in names)) == 4, names
    assert "x__y__z" in names and "x__y__z_2" in names
    assert len(notes) == 1 and "x__y__z_2" in notes[0]
    names, notes = unique_names(["A", "a", "a_2"])  # case-insensitive, and a suffix never lands on a name
    assert names == ["A", "a_2", "a_2_2"] and len(notes) == 2


@pytest.mark.parametrize("stem", ["..", "../../etc/passwd", "/abs/path", "a/../../b", "C:\\evil", "\x00\x01nul",
                                  ".hidden", "  ", "", "é ☕ photo", "x" * 400, "é" * 200])
def test_no_input_name_leaves_the_output_folder(tmp_path, stem):
    name = safe_stem(stem)
    assert name and "/" not in name and "\\" not in name and not name.startswith(".")
    assert len(name.encode()) <= inputs.NAME_BYTES
    for suffix in (".png", "_2.png", ".steps.json"):
        path = output_path(tmp_path, f"{name}__{name}{suffix}")
        assert path.resolve().parent == tmp_path.resolve()
        path.write_bytes(b"x")  # the file system takes the name
    if stem == "é ☕ photo":
        assert name == "é ☕ photo"  # spaces and Unicode are kept
    with pytest.raises(ValueError):
        output_path(tmp_path, "../escape.png")


# ---------------------------------------------------------------------------------------------
# Input files: the hostile folder


def test_hostile_folder_is_reported_file_by_file(tmp_path):
    expect = make_hostile_folder(tmp_path / "in", REPO / "workflows" / "images" / "style_guidance_content.jpg")
    got = collect_images(str(tmp_path / "in"), "content")
    assert sorted(p.name for p in got.images) == sorted(n for n, e in expect.items() if e == "ok")
    for name, why in expect.items():
        if why == "ok":
            continue
        line = next((s for s in got.skipped if f"/{name}:" in s), None)
        assert line is not None and why in line, (name, got.skipped)
    assert any("PIL.Image.MAX_IMAGE_PIXELS" in s for s in got.skipped)
    notes = "\n".join(got.notes)
    assert "subfolder" in notes and "not searched" in notes
    assert "1 hidden file" in notes
    assert "anim.gif has 3 frames" in notes and "16-bit" in notes


def test_input_arguments_that_give_nothing(tmp_path):
    os.symlink("loop", tmp_path / "loop")
    for arg, why in ((tmp_path / "missing.png", "no such file"), (tmp_path / "loop", "symlink loop")):
        with pytest.raises(inputs.InputError, match=why):
            collect_images(str(arg), "style")
    (tmp_path / "empty").mkdir()
    with pytest.raises(inputs.InputError, match="no files"):
        collect_images(str(tmp_path / "empty"), "style")


def test_16bit_and_animated_inputs_become_8bit_first_frame(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    data, suffix = inputs.image_bytes(tmp_path / "g16.png")
    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im.convert("L")).astype(float)
    assert suffix == ".png" and a.min() <= 1 and a.max() >= 254
    assert abs(a.mean() - 127.5) < 2  # the full range, not clipped to white
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    data, suffix = inputs.image_bytes(tmp_path / "a.gif")
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == 1 and im.convert("RGB").getpixel((8, 8))[0] > 200
    Image.new("RGB", (8, 8), "white").save(tmp_path / "plain.jpg")
    raw = (tmp_path / "plain.jpg").read_bytes()
    assert inputs.image_bytes(tmp_path / "plain.jpg") == (raw, ".jpg")  # usual files pass untouched


def test_loadimage_reads_converted_inputs_right(comfy, comfy_base, tmp_path):
    """ComfyUI's own LoadImage: a raw 16-bit PNG comes out near white, the runner's conversion does not."""
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    means, batches = {}, {}
    for label, (data, suffix) in {"raw16": ((tmp_path / "g16.png").read_bytes(), ".png"),
                                  "conv16": inputs.image_bytes(tmp_path / "g16.png"),
                                  "rawgif": ((tmp_path / "anim.gif").read_bytes(), ".gif"),
                                  "convgif": inputs.image_bytes(tmp_path / "anim.gif")}.items():
        (comfy_base / "input" / f"sg_{label}{suffix}").write_bytes(data)
        comfy.run({"load": {"class_type": "LoadImage", "inputs": {"image": f"sg_{label}{suffix}"}},
                   "out": {"class_type": "PreviewImage", "inputs": {"images": ["load", 0]}}})
        image = comfy.output("load")
        means[label], batches[label] = float(image.mean()), image.shape[0]
    assert means["raw16"] > 0.9  # the defect the conversion exists for
    assert abs(means["conv16"] - 0.5) < 0.02
    assert batches["rawgif"] == 3 and batches["convgif"] == 1


# ---------------------------------------------------------------------------------------------
# Workflow files: refused before start-up


def _ui() -> dict:
    return json.loads((WORKFLOWS / "style_transfer_fast.json").read_text())


def _api() -> dict:
    return json.loads((WORKFLOWS / "api" / "style_transfer_fast.json").read_text())


def _node_of(api: dict, class_type: str) -> str:
    """The id of the workflow's one node of this class (ids change when a workflow is redrawn)."""
    (nid,) = [k for k, n in api.items() if n["class_type"] == class_type]
    return nid


def _malformed_uis() -> dict[str, dict]:
    cases = {}
    ui = _ui()
    ui["nodes"][0]["inputs"] = "oops"
    cases["inputs not a list"] = ui
    ui = _ui()
    ui["links"][0] = [1, 2]
    cases["short link"] = ui
    ui = _ui()
    ui["nodes"][3].pop("type")
    cases["node without type"] = ui
    ui = _ui()
    ui["nodes"][3]["widgets_values"] = 5
    cases["widgets_values a number"] = ui
    ui = _ui()
    node = next(n for n in ui["nodes"] if any(i.get("link") is not None for i in n.get("inputs") or []))
    next(i for i in node["inputs"] if i.get("link") is not None)["link"] = 99999
    cases["dangling link id"] = ui
    ui = _ui()
    origin = ui["links"][0][1]
    ui["nodes"] = [n for n in ui["nodes"] if n["id"] != origin]
    cases["link from a deleted node"] = ui
    ui = _ui()
    ui["nodes"].append(dict(ui["nodes"][0]))
    cases["duplicate node id"] = ui
    cases["nodes not a list"] = {"nodes": {"1": {}}, "links": []}
    return cases


@pytest.mark.parametrize("case", sorted(_malformed_uis()))
def test_malformed_editor_workflow_is_refused_by_name(case):
    with pytest.raises(WorkflowError) as e:
        check_ui(_malformed_uis()[case])
    assert len(str(e.value)) > 10


def test_api_prompt_checks():
    api = _api()
    check_api(api)  # the shipped twin is fine
    bad = _api()
    del bad["17"]["inputs"]
    with pytest.raises(WorkflowError, match=r"node 17 \(StyleGuidanceSampler\): no 'inputs'"):
        check_api(bad)
    bad = _api()
    bad["17"]["inputs"]["model"] = ["999", 0]
    with pytest.raises(WorkflowError, match="node 17 .* input 'model': linked to node 999"):
        check_api(bad)


def _run_main(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("case", ["ui-dangling", "ui-short-link", "api-no-inputs", "api-dangling", "nan",
                                  "api-model-parent", "api-model-absolute", "not-json", "output-file",
                                  "output-unwritable"])
def test_bad_workflow_or_output_exits_2_before_start_up(case, tmp_path, capsys):
    """Each refused in about a second: ComfyUI is never started, nothing is written."""
    content = str(REPO / "workflows" / "images" / "style_guidance_content.jpg")
    out = tmp_path / "out"
    wf = tmp_path / "wf.json"
    api = _api()
    if case == "ui-dangling":
        _write(wf, _malformed_uis()["dangling link id"])
    elif case == "ui-short-link":
        _write(wf, _malformed_uis()["short link"])
    elif case == "api-no-inputs":
        del api[_node_of(api, "VAELoader")]["inputs"]
        _write(wf, api)
    elif case == "api-dangling":
        api[_node_of(api, "VAEDecode")]["inputs"]["samples"] = ["404", 0]
        _write(wf, api)
    elif case == "nan":
        api[_node_of(api, "StyleGuidanceSampler")]["inputs"]["scale"] = float("nan")
        _write(wf, json.dumps(api))  # Python writes NaN, which is not JSON
    elif case == "api-model-parent":
        api["2"]["inputs"]["ckpt_name"] = "../../outside.safetensors"
        _write(wf, api)
    elif case == "api-model-absolute":
        api["5"]["inputs"]["vgg_name"] = str(tmp_path / "abs.pth")
        _write(wf, api)
    elif case == "not-json":
        _write(wf, '{"nodes": [')
    else:
        _write(wf, api)
    if case == "output-file":
        out.write_text("a file")
    if case == "output-unwritable":
        out = Path("/proc/sg_runner_cannot_write_here")
    code, log = _run_main([str(wf), "--content", content, "--style", content, "--output", str(out)], capsys)
    assert code == EXIT_SETUP, log
    assert "error:" in log and "ComfyUI:" not in log, log  # refused before start-up
    expected = {"ui-dangling": "dangling link", "ui-short-link": "links[0] is malformed",
                "api-no-inputs": "no 'inputs'", "api-dangling": "linked to node 404", "nan": "NaN or infinite",
                "api-model-parent": "no '..'", "api-model-absolute": "no absolute paths", "not-json": "not readable JSON",
                "output-file": "is a file, not a folder", "output-unwritable": "cannot write there"}[case]
    assert expected in log, log
    if case not in ("output-file", "output-unwritable"):
        assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("args,why", [(["--scale", "nan"], "finite"), (["--scale", "inf"], "finite"),
                                      (["--seed", "-1"], "between 0"), (["--timeout", "0"], "more than 0")])
def test_bad_numbers_are_refused(args, why, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_args(["--content", "a", "--style", "b", *args])
    assert e.value.code == EXIT_SETUP and why in capsys.readouterr().err


@pytest.mark.parametrize("url,why", [("http://127.0.0.1:abc", "port"), ("ftp://127.0.0.1:1", "scheme"),
                                     ("127.0.0.1:8188", "scheme"), ("http://:8188", "host"),
                                     ("http://127.0.0.1:0", "port"), ("http://127.0.0.1:70000", "port")])
def test_bad_server_urls_are_refused_before_anything_runs(url, why, capsys):
    """Issue 20, defect 8: a bad --server URL is a setup error (exit 2) naming what is wrong, not a traceback."""
    with pytest.raises(SystemExit) as e:
        cli.parse_args(["--content", "a", "--style", "b", "--server", url])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_SETUP and why in err and url in err, err
    assert cli.server_url_problem("http://127.0.0.1:8188") is None
    assert cli.server_url_problem("https://gpu1:8443/") is None


def test_exit_codes_are_documented():
    text = cli.build_parser().format_help()
    readme = (REPO / "README.md").read_text()
    for code, meaning in EXIT_CODES:
        assert f"{code:>3}  {meaning}" in text
        assert f"| {code} |" in readme, f"README's runner section lacks exit code {code}"


def test_unsafe_model_names_in_editor_workflows_are_refused(comfy_base):
    """Editor files name models only in widget values: checked right after the conversion."""
    from headless.workflow import defs_in_process

    ui = _ui()
    loader = next(n for n in ui["nodes"] if n["type"] == "CheckpointLoaderSimple")
    loader["widgets_values"][0] = "/etc/evil.safetensors"
    wf = prompts.Workflow("evil", Path("evil.json"), ui)
    with pytest.raises(SetupError, match="no absolute paths"):
        prompts.convert(wf, defs_in_process())


def test_converter_never_crashes_on_mutated_workflows(comfy_base):
    """Random damage to a shipped editor file: a WorkflowError naming the problem, or a prompt; nothing else."""
    from headless.workflow import defs_in_process, ui_to_api

    defs = defs_in_process()
    rng = random.Random(5)
    junk = [None, 7, -1, "x", [], {}, [1], 2.5, True]
    outcomes = {"error": 0, "prompt": 0}
    for _ in range(300):
        ui = _ui()
        for _ in range(rng.randint(1, 3)):
            node = rng.choice(ui["nodes"])
            key = rng.choice(["inputs", "widgets_values", "mode", "type", "id", "outputs"])
            if key == "inputs" and node.get("inputs"):
                rng.choice(node["inputs"])[rng.choice(["link", "name", "type"])] = rng.choice(junk)
            elif key == "widgets_values" and isinstance(node.get("widgets_values"), list) and node["widgets_values"]:
                node["widgets_values"][rng.randrange(len(node["widgets_values"]))] = rng.choice(junk)
            else:
                node[key] = rng.choice(junk)
            if rng.random() < 0.3 and ui["links"]:
                ui["links"][rng.randrange(len(ui["links"]))] = rng.choice(junk)
        try:
            api = ui_to_api(ui, defs)
            assert isinstance(api, dict)
            outcomes["prompt"] += 1
        except WorkflowError:
            outcomes["error"] += 1
    assert outcomes["error"] > 100 and outcomes["prompt"] > 0, outcomes


# ---------------------------------------------------------------------------------------------
# Scheduling across servers (pure bookkeeping)


def _pairs(n: int) -> list[Pair]:
    return [Pair(i, Path(f"c{i}"), Path("s"), f"p{i}") for i in range(n)]


def test_scheduler_retries_on_another_server_then_gives_up():
    given_up, logs = [], []
    pairs = _pairs(2)
    sch = Scheduler(pairs, ["A", "B"], lambda p, e: given_up.append((p.name, e)), logs.append)
    p = sch.take("A", wait=0)
    assert p is pairs[0] and p.tried == ["A"]
    sch.failed(p, "A", "node error", server_down=False)  # A stays alive; p goes back for B
    assert sch.take("A", wait=0) is pairs[1]
    q = sch.take("B", wait=0)
    assert q is pairs[0] and q.tried == ["A", "B"]
    sch.failed(q, "B", "node error again", server_down=False)  # tried everywhere: given up
    assert given_up and given_up[0][0] == "p0" and "A: node error" in given_up[0][1] and "B: node" in given_up[0][1]
    sch.done()
    assert sch.take("A", wait=0) is None and sch.take("B", wait=0) is None  # all resolved
    assert any("retrying on another server" in line for line in logs)


def test_scheduler_server_down_and_stop():
    given_up = []
    pairs = _pairs(3)
    sch = Scheduler(pairs, ["A", "B"], lambda p, e: given_up.append(p.name), lambda s: None)
    p = sch.take("A", wait=0)
    sch.failed(p, "A", "connection refused", server_down=True)
    assert "A" not in sch.alive and sch.take("A", wait=0) is None  # no more pairs for a dead server
    q = sch.take("B", wait=0)
    sch.failed(q, "B", "connection refused", server_down=True)  # every server down: all left fail
    assert sorted(given_up) == ["p0", "p1", "p2"] and sch.unresolved == 0
    stop = threading.Event()
    sch = Scheduler(_pairs(2), ["A"], lambda p, e: None, lambda s: None, stop)
    stop.set()
    assert sch.take("A", wait=0) is None


# ---------------------------------------------------------------------------------------------
# Results


V2 = {"version": 2, "total": 3.5, "terms": [
    {"name": "content_mse", "kind": "content_mse", "value": 0.25, "weight": 1.0, "weight_share": 0.4,
     "share": 0.55, "note": None},
    {"name": "gram_style", "kind": "gram_style", "value": 1e-6, "weight": 1.5, "weight_share": 0.6,
     "share": None, "note": "zero gradient"}]}


def test_measure_json_both_versions():
    v1 = results.parse_measure(json.dumps({"content_mse": 0.25, "zecon": 15.0, "total": 8.4}))
    assert v1["version"] == 1 and v1["total"] == 8.4
    assert [(t["name"], t["value"], t["weight"], t["share"]) for t in v1["terms"]] == [
        ("pixel_mse_content", 0.25, None, None), ("vgg_patchnce_content", 15.0, None, None)]  # old kinds, today's names
    v2 = results.parse_measure(json.dumps(V2))
    assert v2["terms"][1]["note"] == "zero gradient" and v2["terms"][0]["share"] == 0.55
    for bad in ("[1, 2]", '{"version": 2}', '{"version": 2, "terms": [{"value": 1}]}'):
        with pytest.raises(ValueError):
            results.parse_measure(bad)


def test_old_term_kinds_read_as_todays():
    """Payloads and step events from before Measure version 4 name terms by the old kinds."""
    v3 = {"version": 3, "total": 1.0, "quality": {}, "terms": [
        {"name": old, "kind": old.split("#")[0], "value": 1.0, "weight": 1.0, "weight_share": 0.25, "share": 0.25,
         "note": None} for old in ("zecon", "zecon_model", "attention_distillation", "content_mse#2")]}
    got = [(t["name"], t["kind"]) for t in results.parse_measure(json.dumps(v3))["terms"]]
    assert got == [("vgg_patchnce_content", "vgg_patchnce_content"), ("zecon_content", "zecon_content"),
                   ("attention_distillation_style", "attention_distillation_style"),
                   ("pixel_mse_content#2", "pixel_mse_content")]
    v4 = {**v3, "version": 4, "terms": [{**t, "name": n, "kind": k} for t, (n, k) in zip(v3["terms"], got, strict=True)]}
    assert [(t["name"], t["kind"]) for t in results.parse_measure(v4)["terms"]] == got  # today's kinds unchanged
    old_events = [{"node": "1", "step": 0, "terms": {"zecon": {"value": 2.0, "share": 1.0}}}]
    assert set(plots.series(old_events)["value"]) == {"vgg_patchnce_content"}


def test_losses_csv_one_row_per_pair():
    a, b, c = _pairs(3)
    a.status, b.status, c.status = "ok", "ok", "failed"
    a.measures = [{"node": "20", "title": "m", **results.parse_measure(V2)}]
    b.measures = [{"node": "20", "title": "m", **results.parse_measure({"content_mse": float("nan"), "total": 1.0})}]
    c.error = "boom"
    text = results.losses_csv([a, b, c], {"20": "m"})
    import csv

    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["p0", "p1", "p2"]
    assert rows[0]["pixel_mse_content"] == "0.25" and rows[0]["pixel_mse_content.weight"] == "1.0"
    assert rows[0]["pixel_mse_content.share"] == "0.55" and rows[0]["gram_style.share"] == "" and rows[0]["total"] == "3.5"
    assert rows[1]["pixel_mse_content"] == "nan" and rows[1]["gram_style"] == ""
    assert rows[2]["status"] == "failed" and rows[2]["error"] == "boom" and rows[2]["total"] == ""
    two = results.losses_csv([a], {"20": "m", "30": "n"})
    assert "20/pixel_mse_content.share" in two.splitlines()[0] and "30/total" in two.splitlines()[0]
    doc = results.strict_json(results.losses_doc([a, b], {"seed": float("nan")}))
    assert "NaN" not in doc and json.loads(doc)["seed"] is None


def test_read_outputs_prefers_the_structured_payload():
    outputs = {
        "19": {"images": [{"filename": "r_00001_.png", "subfolder": "", "type": "output"},
                          {"filename": "p.png", "subfolder": "", "type": "temp"}]},
        "20": {"text": ["content_mse: 0.25 (weight 1)"], "style_guidance": [json.dumps(V2)]},
        "30": {"text": ["not json"]},
        "sg_runner_json_30": {"text": [json.dumps({"a": 1.0, "total": 1.0})]},
        "40": {"text": ["only text"]},
    }
    refs, measures = results.read_outputs(outputs, ["20", "30", "40"], {"30": "sg_runner_json_30"})
    assert [r.filename for r in refs] == ["r_00001_.png"]
    assert json.loads(measures["20"]) == V2 and json.loads(measures["30"])["a"] == 1.0
    assert "40" not in measures  # the text is never parsed


def test_png_chunk_and_atomic_write(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (4, 4), "red").save(path)
    out = tmp_path / "y.png"
    old = os.umask(0o027)
    try:
        results.write_atomic(out, results.add_png_text(path.read_bytes(), "style_guidance", '{"seed": 3}'))
    finally:
        os.umask(old)
    with Image.open(out) as im:
        im.load()
        assert im.text["style_guidance"] == '{"seed": 3}'
    assert (out.stat().st_mode & 0o777) == 0o640  # the umask in force when written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png", "y.png"]  # no temporary file left
    with pytest.raises(ValueError):
        results.add_png_text(b"GIF89a", "k", "v")


# ---------------------------------------------------------------------------------------------
# Per-step plots


def synthetic_steps(n: int = 6) -> list[dict]:
    events = []
    for step in range(n):
        for repeat in range(2 if step in (2, 3) else 1):  # recurrence: two evaluations of steps 2 and 3
            decay = math.exp(-step / 2)
            events.append({"node": "17", "step": step, "fraction": step / n, "sigma": 10 * decay, "total": 2 * decay,
                           "terms": {"pixel_mse_content": {"value": 0.3 * decay, "share": 0.4 + 0.02 * repeat},
                                     "gram_style": {"value": 1e-5 * decay, "share": 0.6 - 0.02 * repeat},
                                     "clip_style": {"value": 0.0, "share": None}}})
    return events


def test_step_series_and_positions():
    events = synthetic_steps()
    xs = plots.step_positions(events)
    assert xs[:4] == [0.0, 1.0, 2.0, 2.5] and len(xs) == len(events)
    data = plots.series(events)
    assert set(data["value"]) == {"pixel_mse_content", "gram_style", "clip_style"}
    assert "clip_style" not in data["share"]  # no share reported: nothing drawn
    assert data["value"]["gram_style"][0] == (0.0, 1e-5)


def test_step_plot_is_a_picture(tmp_path):
    assert plots.matplotlib_available(), "matplotlib is in requirements-test.txt so CI checks the plot path"
    events = synthetic_steps()
    written = results.write_steps(tmp_path / "a.steps.json", tmp_path / "a.steps.png", events, "a__b")
    assert [p.name for p in written] == ["a.steps.json", "a.steps.png"]
    assert json.loads((tmp_path / "a.steps.json").read_text())["events"][3]["step"] == 2
    with Image.open(tmp_path / "a.steps.png") as im:
        im.load()
        assert im.size == (800, 850)  # values, shares, and the weights and scale each step used
        px = np.asarray(im.convert("RGB")).astype(int)
    colourful = (np.abs(px[..., 0] - px[..., 1]) + np.abs(px[..., 1] - px[..., 2])) > 60
    assert colourful.sum() > 500  # coloured lines were drawn, not an empty frame
    assert plots.plot_steps([], "x") is None


def test_a_dollar_name_plots_and_a_failing_plot_is_a_note(tmp_path, monkeypatch):
    """Issue 20, defect 7: 'cost$__$x' is a title, not mathtext; a plot that raises leaves the JSON and a note."""
    written = results.write_steps(tmp_path / "a.steps.json", tmp_path / "a.steps.png", synthetic_steps(), "cost$__$x")
    assert [p.name for p in written] == ["a.steps.json", "a.steps.png"]

    def broken(events, title):
        raise ValueError("cannot draw")

    monkeypatch.setattr(plots, "plot_steps", broken)
    notes: list[str] = []
    written = results.write_steps(tmp_path / "b.steps.json", tmp_path / "b.steps.png", synthetic_steps(), "t",
                                  warn=notes.append)
    assert [p.name for p in written] == ["b.steps.json"] and not (tmp_path / "b.steps.png").exists()
    assert len(notes) == 1 and "cannot draw" in notes[0]


def test_without_matplotlib_only_the_json_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    written = results.write_steps(tmp_path / "a.steps.json", tmp_path / "a.steps.png", synthetic_steps(), "t")
    assert [p.name for p in written] == ["a.steps.json"] and not (tmp_path / "a.steps.png").exists()


def test_a_negative_weight_is_drawn_below_zero_and_named():
    events = [{"node": "1", "step": 0, "terms": {"gram_style": {"value": 1.0, "weight": -1.0, "share": 0.25},
                                                 "pixel_mse_content": {"value": 2.0, "weight": 3.0, "share": 0.75}}}]
    data = plots.series(events)
    assert data["share"]["gram_style (negative weight: away)"] == [(0.0, -0.25)]
    assert data["share"]["pixel_mse_content"] == [(0.0, 0.75)]
    assert data["value"]["gram_style (negative weight: away)"] == [(0.0, 1.0)]  # the value keeps its sign


def test_the_plot_series_carry_the_scheduled_weights_and_scale():
    """Schedules: the weight and scale each step used are series of their own (the curve the run used)."""
    events = [{"node": "1", "step": i, "scale": 0.5 * i / 3, "terms": {
        "gram_style": {"value": 1.0, "weight": 2.0 * (1 - i / 3), "share": 0.5}}} for i in range(3)]
    events.append({"node": "1", "step": 3, "terms": {}})  # an event without a scale (older packs) is skipped
    data = plots.series(events)
    assert data["scale"]["scale"] == [(0.0, 0.0), (1.0, 0.5 / 3), (2.0, 1.0 / 3)]
    assert [y for _, y in data["weight"]["gram_style"]] == pytest.approx([2.0, 4 / 3, 2 / 3])
    assert plots.plot_steps(events, "curves") is not None


# ---------------------------------------------------------------------------------------------
# Video workflows: the content is a clip


CLIP = REPO / "workflows" / "images" / "style_guidance_content_clip.mp4"
STILL = REPO / "workflows" / "images" / "style_guidance_content.jpg"


@pytest.mark.parametrize("workflow,content,words", [
    ("style_transfer_wan", STILL, ["a still picture", "style_transfer_wan", "Load Video", "a folder of its frames"]),
    ("style_transfer_fast", CLIP, ["a video", "style_transfer_fast", "Load Image", "style_transfer_wan"]),
])
def test_a_still_for_a_video_workflow_or_a_video_for_a_picture_one_exits_2(workflow, content, words, tmp_path, capsys):
    """Refused before ComfyUI starts, naming the input, the workflow and what to give instead."""
    code, log = _run_main([workflow, "--content", str(content), "--style", str(STILL), "--output",
                           str(tmp_path / "out")], capsys)
    assert code == EXIT_SETUP and "ComfyUI:" not in log, log
    for word in words:
        assert word in log, (word, log)
    assert f"--content {content}" in log


def test_a_folder_of_frames_is_one_clip_in_name_order(tmp_path):
    """Three frames (one of another size, one a video skipped by name) become one 3-frame MP4 whose frames
    keep their order; a clip file goes to Load Video as it is."""
    from headless import clips

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, grey in enumerate((20, 120, 220)):  # written out of order: the names decide
        Image.new("RGB", (48, 32) if i != 1 else (40, 40), (grey,) * 3).save(folder / f"f{2 - i}.png")
    (folder / "clip.mp4").write_bytes(CLIP.read_bytes())
    got = clips.collect_clips(str(folder), "style_transfer_wan")
    assert got.images == [folder.absolute()] and "3 pictures in name order" in got.notes[0], got
    assert len(got.skipped) == 1 and "clip.mp4" in got.skipped[0]
    data, suffix = clips.clip_bytes(folder)
    import av

    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert suffix == ".mp4" and len(frames) == 3 and frames[0].shape == (32, 48, 3)
    assert [int(round(float(f.mean()))) for f in frames] == [220, 120, 20]  # f0, f1, f2: lossless greys
    assert clips.clip_bytes(CLIP) == (CLIP.read_bytes(), ".mp4")
    assert clips.collect_clips(str(CLIP), "style_transfer_wan").images == [CLIP.absolute()]


def test_results_keep_a_saved_video_as_it_is():
    """An MP4 from SaveVideo is recognised by its bytes (PNG metadata is for pictures only)."""
    assert results.video_suffix(CLIP.read_bytes()) == ".mp4"
    assert results.video_suffix(STILL.read_bytes()) is None
    assert results.result_names("a__b", [".mp4"]) == ["a__b.mp4"]
    assert results.result_names("a__b", [".mp4", ".png"]) == ["a__b_1.mp4", "a__b_2.png"]
