"""The evaluation protocol (evaluation/): FID, LPIPS, CFSD, pairing, weights, the CLI and the benchmark.

Stand-in weights are seeded random networks written by the tests (evaluation/standins.py); the
independent references are pytorch-fid's Frechet distance and the lpips package's own LPIPS
class (both test-only), and a direct full-matrix transcription of CFSD's definition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from evaluation import fid as FD
from evaluation.cfsd import cfsd_pair, similarity_kl
from evaluation.images import load_rgb
from evaluation.inception import ArtInception, load_art_inception, random_art_inception_state
from evaluation.lpips_metric import LPIPSAlex
from evaluation.pairing import pair_images
from evaluation.standins import write_standins
from evaluation.weights import ALEXNET, INCEPTION, LPIPS_HEADS, SOURCES, VGG19, WeightsMissing, locate, read

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return write_standins(tmp_path_factory.mktemp("eval_models"), seed=0)


@pytest.fixture(scope="module")
def lpips_net(models) -> LPIPSAlex:
    return LPIPSAlex(read(models / "evaluation" / ALEXNET, "AlexNet"),
                     read(models / "evaluation" / LPIPS_HEADS, "heads"), "stand-in")


@pytest.fixture(scope="module")
def vgg(models):
    from losses.vgg import load_vgg19_features

    return load_vgg19_features(str(models / "vgg" / VGG19))


# ------------------------------------------------------------------ FID


def test_fd_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(60, 24))
    assert abs(FD.frechet_distance_of(x, x)) < 1e-8
    assert abs(FD.frechet_distance_of(x, x, "svd")) < 1e-8


def test_fd_of_two_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a = rng.normal(size=(d, d))
    s2 = a @ a.T + np.eye(d)
    c = 2.5  # S1 = c I commutes with S2: tr sqrt(S1 S2) = sqrt(c) * sum sqrt(eig(S2))
    s1 = c * np.eye(d)
    closed = float(np.sum((mu1 - mu2) ** 2) + c * d + np.trace(s2) - 2 * np.sqrt(c) * np.sqrt(np.linalg.eigvalsh(s2)).sum())
    assert FD.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-9)
    # Diagonal covariances: sum of (sqrt(a) - sqrt(b))^2.
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    diag = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2))
    assert FD.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(diag, rel=1e-9)


@pytest.mark.parametrize("n1,n2,d", [(80, 60, 32), (20, 30, 64)])  # full-rank, then singular covariances
def test_fd_agrees_with_pytorch_fid(n1, n2, d):
    pf = pytest.importorskip("pytorch_fid.fid_score")
    rng = np.random.default_rng(n1 + d)
    a = rng.normal(size=(n1, d))
    b = rng.normal(loc=0.3, scale=1.2, size=(n2, d)) + 0.1 * rng.normal(size=(1, d))
    mine = FD.frechet_distance_of(a, b)
    ref = pf.calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert mine == pytest.approx(float(ref), rel=1e-6)
    assert FD.frechet_distance_of(a, b, "svd") == pytest.approx(float(ref), rel=1e-6)


def test_fd_falls_back_to_a_diagonal_offset_when_the_root_is_not_finite(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    expected = FD.frechet_distance_of(a, b)
    real_sqrtm, seen = FD.linalg.sqrtm, []

    def first_call_not_finite(m, *args, **kw):
        seen.append(m)
        if len(seen) == 1:
            return np.full_like(m, np.nan)
        return real_sqrtm(m, *args, **kw)

    monkeypatch.setattr(FD.linalg, "sqrtm", first_call_not_finite)
    got = FD.frechet_distance_of(a, b)
    assert len(seen) == 2
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert np.allclose(seen[1], (s1 + 1e-6 * np.eye(8)) @ (s2 + 1e-6 * np.eye(8)))
    assert got == pytest.approx(expected, rel=1e-4) and got != expected


def test_fid_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        FD.gaussian_stats(np.zeros((1, 4)))


# ------------------------------------------------------------------ networks


def test_art_inception_loads_its_file_strictly(models, tmp_path):
    state = read(models / "evaluation" / INCEPTION, "art_inception")
    net = load_art_inception(state, "stand-in")
    with torch.no_grad():
        f = net(torch.rand(2, 3, 96, 128))
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and float(f.std()) > 0
    broken = dict(state)
    broken.pop("Mixed_6b.branch7x7_2.conv.weight")
    with pytest.raises(ValueError, match="1 trunk weight"):
        load_art_inception(broken, "broken.pth")
    assert set(random_art_inception_state(1)) >= set(ArtInception().state_dict())


def test_lpips_is_zero_on_identical_images_and_matches_the_lpips_package(lpips_net, models):
    lpips = pytest.importorskip("lpips")
    x = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    y = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert lpips_net(x, x).abs().max() < 1e-7
    d = lpips_net(x, y)
    assert (d > 0).all()
    # The package's own LPIPS class, trunk built without its downloader and given the same weights.
    ref = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    trunk = {k.removeprefix("features."): v for k, v in read(models / "evaluation" / ALEXNET, "a").items()}
    for s, idx in zip(("slice1", "slice2", "slice3", "slice4", "slice5"), ((0,), (3,), (6,), (8,), (10,)), strict=True):
        for i in idx:
            conv = getattr(ref.net, s)._modules[str(i)]  # the slices keep torchvision's indices as names
            conv.weight.data.copy_(trunk[f"{i}.weight"])
            conv.bias.data.copy_(trunk[f"{i}.bias"])
    heads = read(models / "evaluation" / LPIPS_HEADS, "heads")
    for i, lin in enumerate(ref.lins):
        lin.model[-1].weight.data.copy_(heads[f"lin{i}.model.1.weight"])
    ref.eval()
    with torch.no_grad():
        want = ref(2 * x - 1, 2 * y - 1).flatten()
        want_grey = ref(2 * x[:, :1] - 1, 2 * y[:, :1] - 1).flatten()
    assert torch.allclose(d, want, rtol=1e-5, atol=1e-7)
    assert torch.allclose(lpips_net(x[:, :1], y[:, :1]), want_grey, rtol=1e-5, atol=1e-7)


def _cfsd_full_matrix(fc: torch.Tensor, fs: torch.Tensor) -> float:
    """CFSD's definition transcribed directly: whole matrices, kl_div batchmean over one image."""
    def rows(f, fn):
        b, c, h, w = f.shape
        t = f.permute(0, 3, 2, 1).reshape(b, h * w, c) / c
        return fn(t @ t.transpose(1, 2), dim=-1).reshape(b, -1)
    return float(F.kl_div(rows(fs, F.log_softmax), rows(fc, F.softmax), reduction="batchmean"))


def test_cfsd_is_zero_on_identical_images_grows_with_perturbation_and_matches_the_definition(vgg):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 96, 96, generator=g)
    noise = torch.randn(x.shape, generator=g)
    assert abs(cfsd_pair(vgg, x, x)) < 1e-6
    values = [cfsd_pair(vgg, x, (x + s * noise).clamp(0, 1)) for s in (0.05, 0.2, 0.6)]
    assert 0 < values[0] < values[1] < values[2]
    with torch.no_grad():
        fc = vgg.extract(x, ("relu3_1",))["relu3_1"]
        fs = vgg.extract((x + 0.2 * noise).clamp(0, 1), ("relu3_1",))["relu3_1"]
    assert similarity_kl(fc, fs, chunk=100) == pytest.approx(_cfsd_full_matrix(fc.double(), fs.double()), rel=1e-9)
    # The protocol's float32 arithmetic lands within its rounding of the exact value.
    assert _cfsd_full_matrix(fc, fs) == pytest.approx(similarity_kl(fc, fs), abs=2e-5)


# ------------------------------------------------------------------ pairing and images


def _img(path: Path, size=(64, 48), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16)).save(path)
    elif mode == "L":
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8), "L").save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 255, (h, w, 4), dtype=np.uint8), "RGBA").save(path)
    else:
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_pairing_names_every_missing_extra_misnamed_and_unreadable_file(tmp_path):
    c, s, o = (tmp_path / n for n in ("c", "s", "o"))
    for d in (c, s, o):
        d.mkdir()
    _img(c / "00.png"), _img(c / "01.jpg"), _img(c / "02.png")
    _img(s / "a.png"), _img(s / "b_x.png")
    _img(o / "00_stylized_a.png"), _img(o / "01_stylized_b_x.png")
    _img(o / "00_stylized_zz.png")          # style missing
    _img(o / "09_stylized_a.png")           # content missing
    _img(o / "holiday.png")                 # not the naming scheme
    (o / "01_stylized_a.png").write_bytes(b"not an image")  # unreadable
    (o / "notes.txt").write_text("ignored")
    res = pair_images(o, c, s)
    assert [(p.content_name, p.style_name) for p in res.pairs] == [("00", "a"), ("01", "b_x")]
    text = "\n".join(res.problems)
    assert "00_stylized_zz.png: no style 'zz'" in text
    assert "09_stylized_a.png: no content '09'" in text
    assert "holiday.png: name is not" in text
    assert "01_stylized_a.png: unreadable image" in text
    assert "02.png: content image with no stylised image" in text
    assert "notes.txt" not in text


def test_pairing_accepts_the_protocols_duplicated_eval_folders(tmp_path):
    c, s, o = (tmp_path / n for n in ("cnt_eval", "sty_eval", "out"))
    for d in (c, s, o):
        d.mkdir()
    for name in ("00_stylized_00", "00_stylized_01"):
        _img(o / f"{name}.png"), _img(c / f"{name}.png"), _img(s / f"{name}.png", seed=3)
    res = pair_images(o, c, s)
    assert len(res.pairs) == 2 and not res.problems
    assert res.pairs[0].content == c / "00_stylized_00.png"


def test_images_grey_16bit_and_rgba_are_read_as_8bit_rgb(tmp_path):
    g = load_rgb(_img(tmp_path / "g.png", mode="L"))
    h = load_rgb(_img(tmp_path / "h.png", mode="I;16"))
    a = load_rgb(_img(tmp_path / "a.png", mode="RGBA"))
    assert g.mode == h.mode == a.mode == "RGB"
    arr = np.asarray(h)
    assert 20 < arr.mean() < 235 and arr.std() > 30  # scaled from 16 bits, not clipped to white
    raw = np.asarray(Image.open(tmp_path / "a.png"))[..., :3]
    assert np.array_equal(np.asarray(a), raw)  # alpha dropped, as the protocol does


# ------------------------------------------------------------------ weights and the CLI


def test_a_missing_weight_names_the_file_the_folder_and_the_source(tmp_path):
    (tmp_path / "evaluation").mkdir()
    with pytest.raises(WeightsMissing) as e:
        locate(tmp_path)
    msg = str(e.value)
    for name in (INCEPTION, ALEXNET, VGG19):
        assert name in msg and SOURCES[name] in msg
    assert str(tmp_path / "evaluation") in msg and str(tmp_path / "vgg") in msg


def _cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "headless", "evaluate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_evaluate_help_documents_the_metrics_and_the_weights():
    r = _cli("--help")
    assert r.returncode == 0, r.stderr
    for word in ("ArtFID", "LPIPS", "CFSD", "_stylized_", INCEPTION, ALEXNET, VGG19, "--models", "--out"):
        assert word in r.stdout


def test_evaluate_cli_scores_writes_csv_and_json_and_names_skipped_files(tmp_path, models):
    c, s, o = (tmp_path / n for n in ("c", "s", "o"))
    for d in (c, s, o):
        d.mkdir()
    for i in range(2):
        _img(c / f"c{i}.png", size=(96, 96), seed=i)
        _img(s / f"s{i}.png", size=(80, 120), seed=10 + i)
    for i in range(2):
        for j in range(2):
            _img(o / f"c{i}_stylized_s{j}.png", size=(96, 96) if (i, j) != (1, 1) else (100, 90), seed=20 + i + j)
    _img(o / "stray.png")
    r = _cli(str(o), "--content", str(c), "--style", str(s), "--models", str(models), "--out", str(tmp_path / "res"),
             "--short-side", "96", "--fid-sqrt", "svd")
    assert r.returncode == 1, r.stdout + r.stderr  # scored, but stray.png was skipped
    assert "stray.png" in r.stderr and "4 pair(s) scored" in r.stdout
    row = (tmp_path / "res.csv").read_text().splitlines()
    assert row[0].startswith("ArtFID,FID,LPIPS,LPIPS_grey,CFSD,pairs,sha256_inception")
    data = json.loads((tmp_path / "res.json").read_text())
    sc = data["scores"]
    assert sc["ArtFID"] == pytest.approx((1 + sc["LPIPS"]) * (1 + sc["FID"]))
    assert data["pairs_scored"] == 4 and all(v > 0 for v in sc.values())
    assert any("differ in size" in n for n in data["notes"])
    assert len(data["weights"]["inception"]["sha256"]) == 64
    bad = _cli(str(o), "--content", str(c), "--style", str(s), "--models", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and INCEPTION in bad.stderr


@pytest.mark.slow
def test_bench_quality_standins_end_to_end_on_a_2x2_subset(tmp_path):
    c, s = tmp_path / "c", tmp_path / "s"
    c.mkdir(), s.mkdir()
    for i in range(2):
        _img(c / f"c{i}.png", size=(96, 96), seed=i)
        _img(s / f"s{i}.png", size=(96, 96), seed=5 + i)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_quality.py"), "--standins",
                        "--content", str(c), "--style", str(s), "--rows", "workflows", "plain",
                        "--out", str(tmp_path / "quality")], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    data = json.loads((tmp_path / "quality.json").read_text())
    assert [row["pairs"] for row in data["rows"]] == [4, 4]
    guided, plain = (row["scores"] for row in data["rows"])
    assert all(np.isfinite(v) for v in [*guided.values(), *plain.values()])
    assert guided != plain  # guidance changed the pictures
    md = (tmp_path / "quality.md").read_text()
    assert "28.80" in md and "Stand-ins" in md and "plain img2img" in md
