"""FID, KID, the feature networks and their weights file, the digit classifier, and the GAN evaluations.

Hand-computed values for the distances; a fixed random stand-in feature network instead of the 100 MB
Inception file; tiny CycleGAN and StyleGAN networks; one torch thread (the CPUs are shared).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from gencli import metrics
from gencli.errors import GencliError
from gencli.inference.evaluation import evaluate_generator, evaluate_translation, folder_features, reference_subset


# This checkout's asset (the installed package finds it as gencli.assets, see load_digit_classifier).
CLASSIFIER = Path(__file__).resolve().parents[1] / "assets" / "mnist_classifier.safetensors"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv("GENCLI_INCEPTION", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield
    torch.set_num_threads(threads)


# --- Frechet distance --------------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
    # Diagonal covariances commute: tr sqrt(S1 S2) = sum sqrt(s1_i s2_i) = sqrt(1*4) + sqrt(4*9) = 8.
    fd = metrics.frechet_distance([0.0, 0.0], torch.diag(torch.tensor([1.0, 4.0])),
                                  [1.0, 2.0], torch.diag(torch.tensor([4.0, 9.0])))
    assert fd == pytest.approx((1 + 4) + (1 + 4) + (4 + 9) - 2 * 8, abs=1e-9)  # = 7


def test_frechet_distance_of_a_non_diagonal_pair_by_hand():
    # For 2x2 A with eigenvalues l1, l2 >= 0: (sqrt l1 + sqrt l2)^2 = tr A + 2 sqrt(det A), so
    # tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)). S1 S2 = [[2, 2], [1, 2]]: tr 4, dets 1 and 2.
    s1 = torch.tensor([[2.0, 1.0], [1.0, 1.0]])
    s2 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    expected = 1.0 + 3 + 3 - 2 * math.sqrt(4 + 2 * math.sqrt(2))  # mean difference (1, 0) adds 1
    assert metrics.frechet_distance([1.0, 0.0], s1, [0.0, 0.0], s2) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_matches_the_eigenvalues_of_the_product_and_vanishes_on_itself():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 6, generator=g, dtype=torch.float64), torch.randn(30, 6, generator=g, dtype=torch.float64)
    (mu1, s1), (mu2, s2) = metrics.feature_stats(a), metrics.feature_stats(b * 2 + 1)
    assert torch.allclose(s1, torch.cov(a.T))  # unbiased covariance, features in columns
    tr_sqrt = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    expected = ((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * tr_sqrt
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(expected), abs=1e-6)
    assert abs(metrics.fid_from_features(a, a)) < 1e-6
    # Fewer vectors than dimensions: a singular covariance still gives FD(x, x) = 0.
    few = torch.randn(5, 64, generator=g, dtype=torch.float64)
    assert abs(metrics.fid_from_features(few, few)) < 1e-6


def test_frechet_distance_rejects_mismatched_statistics():
    with pytest.raises(GencliError, match="do not match"):
        metrics.frechet_distance([0.0, 0.0], torch.eye(2), [0.0], torch.eye(1))


# --- KID ----------------------------------------------------------------------------------------------

def test_kid_of_two_tiny_sets_by_hand():
    # d = 1, k(a, b) = (a b + 1)^3. X = {0, 1}, Y = {1, 2}:
    # XX off-diagonal: 2 k(0, 1) / (2 * 1) = 1;  YY: 2 k(1, 2) / 2 = 27;
    # XY: 2 (k(0,1) + k(0,2) + k(1,1) + k(1,2)) / 4 = 2 (1 + 1 + 8 + 27) / 4 = 18.5;  MMD^2 = 1 + 27 - 18.5.
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert metrics.kid(x, y, subsets=3) == pytest.approx(9.5)


def test_kid_matches_a_direct_double_sum():
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randn(5, 3, generator=g, dtype=torch.float64) + shift for shift in (0, 0.5))
    k = lambda a, b: (float(a @ b) / 3 + 1) ** 3  # noqa: E731
    m = 5
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert metrics.kid(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    # Large sets, small subsets: each subset is the first m of a seeded permutation of each set.
    big_x, big_y = torch.randn(300, 3, generator=g, dtype=torch.float64), torch.randn(200, 3, generator=g, dtype=torch.float64)
    order = torch.Generator().manual_seed(5)
    sub_x, sub_y = big_x[torch.randperm(300, generator=order)[:m]], big_y[torch.randperm(200, generator=order)[:m]]
    expected = metrics.kid(sub_x, sub_y, subsets=1)  # the same subsets, whole
    assert metrics.kid(big_x, big_y, subsets=1, subset_size=m, seed=5) == pytest.approx(expected, rel=1e-9)
    assert metrics.kid(x, y, subsets=3, subset_size=4) != metrics.kid(x, y)
    assert metrics.kid(x, y, subsets=3, subset_size=4, seed=7) == metrics.kid(x, y, subsets=3, subset_size=4, seed=7)


def test_kid_of_identical_distributions_is_near_zero():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    same = metrics.kid(a, b, subsets=20, subset_size=200)
    shifted = metrics.kid(a, b + 1, subsets=20, subset_size=200)
    assert abs(same) < 0.02 and shifted > 1.0


# --- feature networks ---------------------------------------------------------------------------------

def test_stand_in_features_shape_grey_and_mixed_sizes():
    net = metrics.StandInFeatures(dim=8)
    rgb = torch.randint(0, 256, (5, 3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    feats = metrics.extract_features(rgb, net, batch_size=2)
    assert feats.shape == (5, 8) and feats.dtype == torch.float64
    grey = rgb[:, :1]
    assert torch.equal(metrics.extract_features(grey, net), metrics.extract_features(grey.repeat(1, 3, 1, 1), net))
    # Single images of different sizes, one at a time, with progress.
    seen = []
    singles = metrics.extract_features([rgb[0], rgb[1, :, :16, :16], rgb[2]], net, progress=seen.append)
    assert singles.shape == (3, 8) and torch.allclose(singles[0], feats[0]) and seen[-1] == 3
    with pytest.raises(GencliError, match="uint8"):
        metrics.extract_features(rgb.float(), net)


def test_nv_resize_keeps_a_299_image_and_inception_wrappers_follow_the_protocol():
    x = torch.rand(2, 3, 299, 299) * 255
    assert torch.allclose(metrics.nv_resize(x), x, atol=0.01)  # float32 grid coordinates

    class Bare(torch.nn.Module):  # a bare network: returns its input's range and size
        def forward(self, x):
            return torch.stack([x.amin((1, 2, 3)), x.amax((1, 2, 3)), x.new_full((len(x),), x.shape[-1])], 1)

    class Whole(torch.nn.Module):  # the StyleGAN2-ADA interface: uint8 in, resizes itself
        def forward(self, img, return_features: bool = False):
            assert return_features
            return img.float().mean((1, 2, 3))[:, None]

    images = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(3 * 8 * 8).reshape(2, 3, 8, 8)
    bare = metrics.InceptionFeatures(torch.jit.script(Bare()))
    assert not bare.whole_protocol
    assert torch.allclose(bare(images), torch.tensor([[-1.0, -1.0, 299], [127 / 128, 127 / 128, 299]]))
    whole = metrics.InceptionFeatures(torch.jit.script(Whole()))
    assert whole.whole_protocol and torch.equal(whole(images[:, :1]), torch.tensor([[0.0], [255.0]]))


# --- the weights file -----------------------------------------------------------------------------------

def scripted_file(path):
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(path))
    return path


def test_download_checks_the_sha256(tmp_path):
    source = scripted_file(tmp_path / "net.pt")
    url, good = source.as_uri(), metrics.sha256sum(source)
    cached = metrics.inception_cache_path()
    assert str(cached).startswith(str(tmp_path / "cache" / "gencli"))
    with pytest.raises(GencliError, match="SHA-256") as bad:
        metrics.find_inception(downloads=[(url, "0" * 64)])
    assert len(str(bad.value).splitlines()) == 1 and str(cached) in str(bad.value)
    assert not cached.exists() and list(cached.parent.iterdir()) == []  # nothing half-written is kept
    assert metrics.find_inception(downloads=[(url, good)]) == cached
    assert cached.read_bytes() == source.read_bytes()
    assert metrics.find_inception(downloads=[]) == cached  # found in the cache now
    assert isinstance(metrics.load_inception(download=False), metrics.InceptionFeatures)


def test_explicit_path_and_environment_variable(tmp_path, monkeypatch):
    file = scripted_file(tmp_path / "my inception.pt")
    assert metrics.find_inception(file, downloads=[]) == file
    monkeypatch.setenv("GENCLI_INCEPTION", str(file))
    assert metrics.find_inception(downloads=[]) == file
    monkeypatch.setenv("GENCLI_INCEPTION", str(tmp_path / "missing.pt"))
    with pytest.raises(GencliError, match="GENCLI_INCEPTION .*missing.pt: no such file"):
        metrics.find_inception(downloads=[])
    with pytest.raises(GencliError, match="--inception"):
        metrics.find_inception(tmp_path / "nope.pt")
    not_script = tmp_path / "junk.pt"
    not_script.write_bytes(b"not a zip")
    with pytest.raises(GencliError, match="not a TorchScript file"):
        metrics.load_inception(not_script)


def test_where_to_put_the_file_when_nothing_works():
    with pytest.raises(GencliError) as e:
        metrics.find_inception(downloads=[("http://127.0.0.1:9/inception.pt", "0" * 64)])
    message = str(e.value)
    assert len(message.splitlines()) == 1
    assert str(metrics.inception_cache_path()) in message and metrics.NVIDIA_URL in message
    assert "--inception PATH" in message and "GENCLI_INCEPTION" in message and "download failed" in message
    with pytest.raises(GencliError) as offline:
        metrics.find_inception(download=False)
    assert str(offline.value) == metrics.where_to_put_it()


# --- the digit classifier -------------------------------------------------------------------------------

def test_bundled_classifier_loads_and_reports_on_digit_shaped_images():
    clf = metrics.load_digit_classifier(CLASSIFIER)
    g = torch.Generator().manual_seed(0)
    for images in (torch.rand(6, 1, 28, 28, generator=g),
                   torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8, generator=g)):
        stats = metrics.digit_stats(images, clf, labels=torch.arange(6))
        assert len(stats["class_fraction"]) == 10 and sum(stats["class_fraction"]) == pytest.approx(1)
        assert 0.1 <= stats["mean_confidence"] <= 1 and 0 <= stats["confident"] <= 1
        assert 0 <= stats["accuracy"] <= 1 and 1 <= stats["classes_at_5pct"] <= 6
    with pytest.raises(GencliError, match="28 or 32"):
        metrics.digit_stats(torch.rand(2, 3, 32, 32), clf)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs the real MNIST")
def test_bundled_classifier_is_99_percent_accurate_on_mnist():
    from gencli.data import load_idx_dataset

    _, test = load_idx_dataset("mnist", SHARED_DATA, download=False)
    stats = metrics.digit_stats(test.images[:2000], metrics.load_digit_classifier(CLASSIFIER), test.labels[:2000])
    assert stats["accuracy"] >= 0.99 and stats["classes_at_5pct"] == 10


# --- evaluations end to end -------------------------------------------------------------------------------

def write_domain(folder, n, colour, seed, size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        noise = torch.rand(size[1], size[0], 3, generator=g) * 60
        array = (noise + torch.tensor(colour)).clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(array).save(folder / f"{i:03d}.png")


def test_evaluate_translation_end_to_end(tmp_path):
    from gencli.models.cyclegan import CycleGANConfig, build

    root = tmp_path / "toy"
    for sub, n, colour, seed in (("trainA", 6, (200, 40, 40), 0), ("trainB", 5, (40, 40, 200), 1),
                                 ("testA", 4, (200, 40, 40), 2), ("testB", 3, (40, 40, 200), 3)):
        write_domain(root / sub, n, colour, seed)
    torch.manual_seed(0)
    model = build(CycleGANConfig(ngf=4, n_blocks=1)).eval()
    net = metrics.StandInFeatures(dim=6)
    stages = set()
    result = evaluate_translation(model, root, net, kid_subsets=5, cache_dir=tmp_path / "features",
                                  progress=lambda stage, done, total: stages.add(stage))
    assert set(result) == {f"{p}{m}_{d}" for p in ("", "baseline_") for m in ("fid", "kid") for d in ("a2b", "b2a")} \
        | {"n_test_a", "n_train_b", "n_test_b", "n_train_a"}
    assert (result["n_test_a"], result["n_train_b"], result["n_test_b"], result["n_train_a"]) == (4, 5, 3, 6)
    assert all(math.isfinite(v) for v in result.values())
    assert "translating testA (a2b)" in stages and "features of trainB" in stages
    # The baseline is the untranslated test images against the other domain's training images.
    test_a, train_b = (folder_features(root / s, net) for s in ("testA", "trainB"))
    assert result["baseline_fid_a2b"] == pytest.approx(metrics.fid_from_features(test_a, train_b))
    assert result["baseline_kid_a2b"] == pytest.approx(metrics.kid(test_a, train_b, 5))
    # Red and blue domains: untranslated inputs are far from the other domain.
    assert result["baseline_fid_a2b"] > 0.01
    # Reference features are cached: four folders, and a second run gives the same figures.
    assert len(list((tmp_path / "features").iterdir())) == 4
    assert evaluate_translation(model, root, net, kid_subsets=5, cache_dir=tmp_path / "features") == result
    one_way = evaluate_translation(model, root, net, directions=("b2a",), kid_subsets=5)
    assert set(one_way) == {"fid_b2a", "kid_b2a", "baseline_fid_b2a", "baseline_kid_b2a", "n_test_b", "n_train_a"}
    (root / "testB").rename(root / "elsewhere")
    with pytest.raises(GencliError, match="no testB folder"):
        evaluate_translation(model, root, net, directions=("b2a",))


def test_evaluate_generator_with_digit_statistics():
    from gencli.models.stylegan import Generator, StyleGANConfig

    torch.manual_seed(0)
    G = Generator(StyleGANConfig(resolution=32, channels=1, z_dim=8, w_dim=8, mapping_layers=1,
                                 widths=(8, 8, 8, 8), tanh_output=True)).eval()
    reference = torch.randint(0, 256, (20, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    subset = reference_subset(reference, 12)
    assert subset.shape == (12, 1, 32, 32) and torch.equal(subset, reference_subset(reference, 12))
    assert reference_subset(reference, None) is reference
    result = evaluate_generator(G, subset, metrics.StandInFeatures(), n_samples=10, batch_size=4, kid_subsets=4,
                                classifier=metrics.load_digit_classifier(CLASSIFIER))
    assert result["n_samples"] == 10 and result["n_reference"] == 12
    assert result["fid"] > 0 and math.isfinite(result["kid"])
    assert sum(result["digits"]["class_fraction"]) == pytest.approx(1)
    again = evaluate_generator(G, subset, metrics.StandInFeatures(), n_samples=10, batch_size=5, kid_subsets=4)
    assert again["fid"] == pytest.approx(result["fid"]) and "digits" not in again  # seeds, not batches


def test_the_evaluate_command_end_to_end_with_a_stand_in_network(tmp_path, monkeypatch):
    """`gencli evaluate` on a cyclegan and a stylegan checkpoint, with a TorchScript stand-in for the
    Inception file (the bare-network protocol: float images resized to 299 px)."""
    import json

    from conftest import run
    from gencli.checkpoint import save_model
    from gencli.models.cyclegan import CycleGANConfig, build
    from gencli.models.stylegan import Generator, StyleGANConfig

    class TinyFeatures(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # (N, 12)

    net_file = tmp_path / "standin.pt"
    torch.jit.script(TinyFeatures()).save(str(net_file))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "toy"
    for sub, n, colour, seed in (("trainA", 6, (200, 40, 40), 0), ("trainB", 5, (40, 40, 200), 1),
                                 ("testA", 4, (200, 40, 40), 2), ("testB", 3, (40, 40, 200), 3)):
        write_domain(root / sub, n, colour, seed)
    torch.manual_seed(0)
    model = build(CycleGANConfig(ngf=4, n_blocks=1))
    checkpoint = save_model(tmp_path / "toy.safetensors", "cyclegan", model, model.config, epoch=1, seed=0,
                            extra={"dataset": "toy"})
    result = run("evaluate", "-c", checkpoint, "--data", root, "--inception", net_file, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    for key in ("fid_a2b", "kid_a2b", "fid_b2a", "kid_b2a", "baseline_fid_a2b", "baseline_kid_b2a"):
        assert math.isfinite(scores[key])
    assert scores["n_test_a"] == 4 and scores["n_train_a"] == 6
    text = run("evaluate", "-c", checkpoint, "--data", root, "--inception", net_file, "--log-every", 0)
    assert "a2b: FID" in text.stdout and "untranslated" in text.stdout
    assert "(4 test images against 5 training images)" in text.stdout  # N beside every score
    assert "(3 test images against 6 training images)" in text.stdout
    assert "translating testA (a2b) 4/4  elapsed 0:00:0" in text.output  # progress, with an ETA on the way
    small = json.loads(run("evaluate", "-c", checkpoint, "--data", root, "--inception", net_file, "--max-images", 3,
                           "--json").stdout)
    assert (small["n_test_a"], small["n_train_b"], small["n_test_b"], small["n_train_a"]) == (3, 3, 3, 3)
    assert small["fid_a2b"] != scores["fid_a2b"]
    assert run("evaluate", "-c", checkpoint, "--data", root, "--inception", net_file, "--max-images", 0).exit_code == 2

    config = StyleGANConfig(resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2, channels=3)
    G = Generator(config)
    sg_checkpoint = save_model(tmp_path / "sg.safetensors", "stylegan", G, config, epoch=1, seed=0,
                               extra={"dataset": str(root / "trainA")})
    result = run("evaluate", "-c", sg_checkpoint, "--inception", net_file, "--samples", 8, "--reference", 5, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["n_samples"] == 8 and scores["n_reference"] == 5 and math.isfinite(scores["fid"])
    text = run("evaluate", "-c", sg_checkpoint, "--inception", net_file, "--samples", 8, "--reference", 5)
    assert "(8 samples against 5 training images of" in text.stdout
    missing = run("evaluate", "-c", checkpoint, "--data", root, "--inception", tmp_path / "nowhere.pt")
    assert missing.exit_code == 1 and "no such file" in missing.output
