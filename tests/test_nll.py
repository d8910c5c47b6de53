"""The importance-sampled -log p(x): exact where it can be checked, seeded, bounded in memory;
dynamic binarisation; `vaelab eval --nll` and `vaelab bench nll`."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from vaelab import batching, scores
from vaelab import train as train_module
from vaelab.anomaly import analyze_run, compute_score
from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.data import TEST_BITS_SEED, fixed_bits, load, prepare, redraw_bits
from vaelab.diagnostics import MIN_SPREAD, UntrainedModelWarning, recorded_spread
from vaelab.errors import SettingError, VaelabError
from vaelab.latent_usage import usage
from vaelab.likelihood import (
    SAMPLE_CHUNK,
    default_batch,
    estimate_nll,
    evaluation_set,
    importance_nll,
    largest_activation,
    nll_curve,
)
from vaelab.models import build
from vaelab.models.base import Capabilities, Model
from vaelab.models.losses import LOG_2PI, log_normal
from vaelab.nll_bench import NllConfig, markdown_table, published_rows, run_nll, untrained_runs
from vaelab.run import Run
from vaelab.seeding import keyed_generator
from vaelab.train import fit

DATA, LATENT, SIGMA = 8, 2, 0.5
DOCS_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


class GaussianNoise(nn.Module):
    """p(x | z) = N(x; decoder output, SIGMA^2 I): the decoder's output is the mean itself."""

    def nll(self, mean: Tensor, x: Tensor) -> Tensor:
        per_pixel = 0.5 * (((x - mean) / SIGMA).square() + LOG_2PI) + math.log(SIGMA)
        return per_pixel.flatten(1).sum(1)


class LinearGaussian(Model):
    """x = W z + b + N(0, SIGMA^2 I), z ~ N(0, I), so p(x) = N(b, W W^T + SIGMA^2 I) exactly.

    Its q(z|x) is deliberately not the exact posterior: the mean is shrunk by a tenth, the
    correlation dropped and the standard deviations doubled, so the K = 1 bound is loose.
    """

    latent_dim = LATENT
    shape = (1, 1, DATA)
    capabilities = Capabilities(posterior=True, sampling=True)

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(DATA, LATENT, generator=g, dtype=torch.float64)
        self.b = 0.5 * torch.randn(DATA, generator=g, dtype=torch.float64)
        precision = torch.eye(LATENT, dtype=torch.float64) + self.w.T @ self.w / SIGMA**2
        covariance = torch.linalg.inv(precision)
        self.gain = (0.9 * covariance @ self.w.T / SIGMA**2).float()
        self.log_var = torch.log(2.0**2 * covariance.diagonal()).float()
        self.likelihood = GaussianNoise()

    def check_input(self, x: Tensor, y: Tensor | None) -> None:
        """Its points are real-valued, not images in [0, 1]: every value is valid."""

    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean = (x.flatten(1) - self.b.float()) @ self.gain.T
        return mean, self.log_var.expand_as(mean)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return (z @ self.w.T.float() + self.b.float()).view(-1, *self.shape)

    def draw(self, n: int) -> Tensor:
        g = torch.Generator().manual_seed(1)
        z = torch.randn(n, LATENT, generator=g, dtype=torch.float64)
        x = z @ self.w.T + self.b + SIGMA * torch.randn(n, DATA, generator=g, dtype=torch.float64)
        return x.float().view(n, *self.shape)

    def exact_nll(self, x: Tensor) -> Tensor:
        covariance = self.w @ self.w.T + SIGMA**2 * torch.eye(DATA, dtype=torch.float64)
        p = torch.distributions.MultivariateNormal(self.b, covariance)
        return -p.log_prob(x.double().flatten(1))


@pytest.fixture(scope="module")
def linear():
    return LinearGaussian()


@pytest.fixture(scope="module")
def points(linear):
    return linear.draw(32)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build(ModelConfig("vae", latent_dim=3)).eval()


@pytest.fixture(scope="module")
def digits():
    return load("mnist-sample", "test").first(12).float()


def first_draw(model: Model, x: Tensor, seed: int) -> Tensor:
    """z of each image's first posterior sample, from its keyed stream."""
    mean, log_var = model.posterior(x)
    eps = torch.stack([torch.randn(SAMPLE_CHUNK, model.latent_dim,
                                   generator=keyed_generator(seed, i))[0]
                       for i in range(len(x))])  # fmt: skip
    return mean + torch.exp(0.5 * log_var) * eps


# The estimator against the closed form


def test_the_estimate_approaches_the_exact_likelihood_as_k_grows(linear, points):
    exact = linear.exact_nll(points)
    ks = [1, 10, 100, 1000, 5000]
    gaps = nll_curve(linear, points, ks).double() - exact[:, None]
    mean_gap = gaps.mean(0)
    assert mean_gap[0] > 1.0  # the deliberately wrong q(z|x) leaves the K = 1 bound loose
    assert mean_gap[0] > mean_gap[1] > mean_gap[2] > abs(mean_gap[-1])
    # the stated tolerance at K = 5000: 0.01 nats on average, 0.1 for any one point
    assert abs(mean_gap[-1]) < 0.01
    assert gaps[:, -1].abs().max() < 0.1


def test_k_of_one_is_the_single_sample_elbo_with_the_same_noise(linear, points):
    z = first_draw(linear, points, seed=4)
    mean, log_var = linear.posterior(points)
    zero = torch.zeros_like(z)
    elbo = (-linear.likelihood.nll(linear.decode(z), points) + log_normal(z, zero, zero)
            - log_normal(z, mean, log_var))  # fmt: skip
    torch.testing.assert_close(importance_nll(linear, points, 1, seed=4), -elbo)


def test_the_iwae_and_elbo_scores_share_their_noise(vae, digits):
    """For one sample the two differ only by the exact KL against its one-sample estimate."""
    z = first_draw(vae, digits, seed=2)
    mean, log_var = vae.posterior(digits)
    zero = torch.zeros_like(z)
    one_sample_kl = log_normal(z, mean, log_var) - log_normal(z, zero, zero)
    exact_kl = -0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(1)
    difference = scores.iwae(vae, digits, 1, seed=2) - scores.elbo(vae, digits, 1, seed=2)
    torch.testing.assert_close(difference, one_sample_kl - exact_kl, rtol=1e-4, atol=1e-3)


def test_the_estimate_is_seeded_and_does_not_depend_on_the_batch_size(vae, digits):
    whole = importance_nll(vae, digits, 250, seed=3)
    assert torch.equal(importance_nll(vae, digits, 250, seed=3), whole)
    for batch in (1, 5, 12):
        torch.testing.assert_close(importance_nll(vae, digits, 250, 3, batch), whole)
    assert not torch.allclose(importance_nll(vae, digits, 250, seed=4), whole)


def test_the_sampled_scores_do_not_depend_on_the_batch_size(vae, digits, monkeypatch):
    whole = scores.elbo(vae, digits, 30)
    monkeypatch.setattr(batching, "CPU_ROWS", 30)  # one image per pass
    torch.testing.assert_close(scores.elbo(vae, digits, 30), whole)


def test_memory_does_not_grow_with_k(linear, points, monkeypatch):
    rows = []
    decode = linear.decode
    monkeypatch.setattr(linear, "decode", lambda z, y=None: rows.append(len(z)) or decode(z))
    importance_nll(linear, points, 1000, batch=4)
    assert max(rows) == 4 * SAMPLE_CHUNK
    assert sum(rows) == 1000 * len(points)


def test_a_cpu_pass_decodes_fewer_samples_of_a_model_with_larger_activations(digits):
    names = ("mlp-vae-iwae", "vae", "pixel-vae")
    mlp, conv, pixel = (build(ModelConfig(name).resolved()) for name in names)
    assert largest_activation(mlp, digits[:1]) == 28 * 28  # the pixel logits
    assert largest_activation(pixel, digits[:1]) == 32 * 28 * 28  # the pixelcnn's maps
    assert default_batch(mlp, digits, 5000) == default_batch(conv, digits, 5000) == 10
    assert default_batch(pixel, digits, 5000) == 2
    assert not any(module._forward_hooks for module in pixel.modules())


def test_each_k_of_a_curve_is_the_estimate_with_that_k(vae, digits):
    curve = nll_curve(vae, digits, [1, 7, 130])
    for column, k in enumerate([1, 7, 130]):
        torch.testing.assert_close(curve[:, column], importance_nll(vae, digits, k))


def test_bad_sample_counts_and_models_are_named(vae, digits):
    with pytest.raises(SettingError, match="samples must be a whole number of at least 1"):
        importance_nll(vae, digits, 0)
    with pytest.raises(SettingError, match="batch must be"):
        importance_nll(vae, digits, 10, batch=0)
    with pytest.raises(VaelabError, match="must increase"):
        nll_curve(vae, digits, [10, 5])
    with pytest.raises(VaelabError, match="needs a model with a posterior q"):
        importance_nll(build(ModelConfig("ae")), digits, 10)
    with pytest.raises(VaelabError, match="cvae is conditional"):
        importance_nll(build(ModelConfig("cvae")), digits, 10)
    with pytest.raises(VaelabError, match="empty"):
        importance_nll(vae, digits[:0], 10)
    with pytest.raises(VaelabError, match=r"shaped \(N, 1, 28, 28\)"):
        importance_nll(vae, digits.flatten(1), 10)


# Dynamic binarisation


def tiny_config(binarize: str = "dynamic", epochs: int = 2) -> RunConfig:
    return RunConfig(
        DataConfig("mnist-sample", train_size=128, binarize=binarize),
        ModelConfig("vae"),
        TrainConfig(epochs, batch_size=32),
    )


def test_binarised_images_are_bits_drawn_with_the_pixel_intensities():
    grey = load("mnist-sample", "test").first(500)
    bits = grey.binarized(TEST_BITS_SEED)
    assert set(bits.images.unique().tolist()) <= {0, 255}
    assert torch.equal(grey.binarized(TEST_BITS_SEED).images, bits.images)
    assert not torch.equal(grey.binarized(TEST_BITS_SEED + 1).images, bits.images)
    assert abs(bits.float().mean() - grey.float().mean()) < 0.005
    assert (bits.images[grey.images == 0] == 0).all()
    assert (bits.images[grey.images == 255] == 255).all()


def test_the_test_bits_never_change_and_the_training_images_stay_grey():
    train, test = prepare(DataConfig("mnist-sample", binarize="dynamic"))
    again = prepare(DataConfig("mnist-sample", binarize="dynamic"))[1]
    assert torch.equal(test.images, again.images)
    assert set(test.images.unique().tolist()) == {0, 255}
    assert len(train.images.unique()) > 2
    # an image's bits do not depend on the classes selected
    threes = prepare(DataConfig("mnist-sample", classes=[3], binarize="dynamic"))[1]
    assert torch.equal(threes.images, test.images[test.labels == 3])
    held_out = prepare(DataConfig("mnist-sample", validation=0.1, binarize="dynamic"))[1]
    assert set(held_out.images.unique().tolist()) == {0, 255}


def test_every_epoch_draws_new_bits_for_the_same_images():
    grey = load("mnist-sample", "train").first(64).float()
    first, second = redraw_bits(grey, 0, 1, 0), redraw_bits(grey, 0, 2, 0)
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(redraw_bits(grey, 0, 1, 0), first)
    assert not torch.equal(first, second)
    assert not torch.equal(redraw_bits(grey, 1, 1, 0), first)  # another seed


def test_every_number_of_processes_draws_the_same_bits_for_an_image():
    grey = load("mnist-sample", "train").first(10).float()
    whole = redraw_bits(grey, 0, 1, 3)
    rows = torch.tensor_split(torch.arange(10), 3)  # three processes' slices of the batch
    slices = [redraw_bits(grey[r], 0, 1, 3, r, len(grey)) for r in rows]
    assert torch.equal(torch.cat(slices), whole)


def test_the_training_loop_binarises_every_batch_of_every_epoch_afresh(tmp_path, monkeypatch):
    keys, inputs = [], []

    def recording(images, seed, epoch, step, rows=None, batch=None):
        keys.append((seed, epoch, step))
        inputs.append(redraw_bits(images, seed, epoch, step, rows, batch))
        return inputs[-1]

    monkeypatch.setattr(train_module, "redraw_bits", recording)
    fit(tiny_config(), tmp_path / "run", progress=False)
    # 128 images, 32 a batch, 2 epochs: each batch its own stream, so new bits every epoch
    assert keys == [(0, epoch, step) for epoch in (1, 2) for step in range(4)]
    assert all(set(x.unique().tolist()) == {0.0, 1.0} for x in inputs)
    assert RunConfig.load(tmp_path / "run" / "config.json").data.binarize == "dynamic"


def test_a_resumed_dynamically_binarised_run_is_exact(tmp_path):
    whole = fit(tiny_config(epochs=2), tmp_path / "whole", progress=False)
    fit(tiny_config(epochs=1), tmp_path / "parts", progress=False)
    parts = fit(tiny_config(epochs=2), tmp_path / "parts", resume=True, progress=False)
    a, b = whole.load_model().state_dict(), parts.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    grey = fit(tiny_config("none", epochs=1), tmp_path / "grey", progress=False)
    assert grey.metrics()[0]["train_loss"] != parts.metrics()[0]["train_loss"]


def test_configs_saved_before_binarisation_still_load(tmp_path):
    raw = tiny_config().to_dict()
    del raw["data"]["binarize"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert RunConfig.load(tmp_path / "config.json").data.binarize == "none"


def test_a_bad_binarisation_is_named():
    with pytest.raises(SettingError, match="binarize must be none or dynamic, got 'static'"):
        prepare(DataConfig("mnist-sample", binarize="static"))
    with pytest.raises(SystemExit):
        main(["train", "vae", "--binarize", "static", "--out", "x"])


def test_full_mnist_under_the_protocol(mnist_dir):
    train, test = prepare(DataConfig("mnist", str(mnist_dir), binarize="dynamic"))
    assert (len(train), len(test)) == (60_000, 10_000)
    assert set(test.images.unique().tolist()) == {0, 255}
    bits = load("mnist", "test", str(mnist_dir)).binarized(TEST_BITS_SEED)
    assert torch.equal(bits.images, test.images)  # as docs/likelihood.md draws them


# vaelab eval RUN --nll


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    return fit(tiny_config(epochs=1), tmp_path_factory.mktemp("nll") / "vae", progress=False)


def eval_json(capsys, *argv: str) -> dict:
    assert main(["eval", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_nll_prints_the_estimate_with_its_protocol(binary_run, capsys):
    shown = eval_json(capsys, str(binary_run.path), "--nll", "--iw-samples", "20",
                      "--test-images", "40")  # fmt: skip
    assert {"mean", "sem", "K", "images", "seconds", "seed", "protocol"} <= set(shown)
    assert (shown["K"], shown["images"], shown["seed"]) == (20, 40, 0)
    assert shown["protocol"]["binarize"] == "dynamic"
    assert shown["estimate"].startswith("-log p(x) in nats per binarised test image")
    assert shown["protocol"]["test_bits_seed"] == TEST_BITS_SEED
    assert 0 < shown["sem"] < shown["mean"]
    direct = estimate_nll(binary_run, 20, test_images=40)
    assert direct["mean"] == shown["mean"]
    images = evaluation_set(binary_run, first=40).float()
    assert shown["active_units"] == usage(binary_run.load_model(), images).active_units
    assert shown["latent_dim"] == binary_run.load_model().latent_dim
    rebatched = eval_json(capsys, str(binary_run.path), "--nll", "--iw-samples", "20",
                          "--test-images", "40", "--batch", "3")  # fmt: skip
    assert rebatched["mean"] == pytest.approx(shown["mean"], rel=1e-6)
    assert "loss" in eval_json(capsys, str(binary_run.path))


def test_eval_nll_names_the_flag_it_cannot_use(binary_run, tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["eval", str(binary_run.path), "--nll", "--iw-samples", "0"])
    assert "--iw-samples" in capsys.readouterr().err
    assert main(["eval", str(binary_run.path), "--iw-samples", "50"]) == 1
    assert "--iw-samples is read only with --nll" in capsys.readouterr().err
    with pytest.raises(SettingError, match="iw_samples must be a whole number"):
        estimate_nll(binary_run, 0)
    ae = tiny_run(tmp_path / "ae", "ae")
    assert main(["eval", str(ae.path), "--nll", "--iw-samples", "5"]) == 1
    assert "needs a model with a posterior q(z|x)" in capsys.readouterr().err


def test_eval_nll_of_a_grey_level_run_says_its_estimate_is_a_score(tiny_run, tmp_path, capsys):
    grey = tiny_run(tmp_path / "grey", "vae")
    shown = eval_json(capsys, str(grey.path), "--nll", "--iw-samples", "2", "--test-images", "8")
    assert shown["protocol"]["binarize"] == "none"
    assert "a score, not a likelihood" in shown["estimate"]
    assert "--binarize dynamic" in shown["estimate"]


def test_the_anomaly_report_of_a_binarised_run_scores_the_test_bits(binary_run):
    report = analyze_run(binary_run, normal=[7], score="elbo", samples=2, figures=False)
    test = load("mnist-sample", "test")
    model, seed = binary_run.load_model(), binary_run.config.train.seed
    bits = compute_score(model, fixed_bits(test, "dynamic").float(), "elbo", 2, seed=seed)
    assert torch.equal(torch.from_numpy(report.scores), bits)
    grey = compute_score(model, test.float(), "elbo", 2, seed=seed)
    assert not torch.allclose(grey, bits)


# vaelab bench nll

PUBLISHED = {
    ("burda2016", 1, "vae", 1): 86.76,
    ("burda2016", 1, "vae", 5): 86.47,
    ("burda2016", 1, "vae", 50): 86.35,
    ("burda2016", 1, "iwae", 5): 85.54,
    ("burda2016", 1, "iwae", 50): 84.78,
    ("burda2016", 2, "vae", 1): 85.33,
    ("burda2016", 2, "vae", 50): 84.78,
    ("burda2016", 2, "iwae", 5): 83.89,
    ("burda2016", 2, "iwae", 50): 82.90,
    ("pythae", 1, "vae", 1): 89.78,
}


def trial(**options) -> NllConfig:
    settings = {"train": TrainConfig(1, batch_size=32), "iw_samples": 20, "test_images": 30,
                "dataset": "mnist-sample", "train_size": 128, **options}  # fmt: skip
    return NllConfig(**settings)


def test_the_published_rows_are_as_printed():
    rows = published_rows()
    assert {(r["source"], r["layers"], r["objective"], r["k"]): r["nll"] for r in rows} == PUBLISHED
    burda = [r for r in rows if r["source"] == "burda2016"]
    assert all(r["iw_samples"] == 5000 and r["binarization"] == "dynamic" for r in burda)
    assert all("Importance Weighted Autoencoders" in r["citation"] for r in burda)
    pythae = next(r for r in rows if r["source"] == "pythae")
    assert pythae["iw_samples"] == 200 and "not dynamic" in pythae["protocol"]


def test_the_benchmark_writes_its_results_beside_the_published_table(tmp_path, monkeypatch):
    with pytest.warns(UntrainedModelWarning, match=r"\(seed 0\) reconstruct every test image"):
        results = run_nll(trial(), tmp_path, progress=False)  # one epoch: 4 steps
    (run,) = results["runs"]
    assert run["reconstruction_spread"] < MIN_SPREAD
    assert results["untrained_runs"] == [{"seed": 0}]
    assert (results["K"], results["images"], results["seeds"]) == (20, 30, [0])
    assert results["nll_mean"] == run["nll"] and results["sem_over"] == "test images"
    assert results["binarization"]["test_bits_seed"] == TEST_BITS_SEED
    assert run["epochs"] == 1 and run["train_seconds"] >= 0
    assert run["curve"]["ks"] == [1, 2, 5, 10, 20] and len(run["curve"]["nll"]) == 4
    assert json.loads((tmp_path / "results.json").read_text())["nll_mean"] == run["nll"]
    table = (tmp_path / "table.md").read_text()
    assert "| vaelab mlp-vae-iwae |" in table and "1 epochs" not in table
    assert results["active_units_mean"] == run["active_units"] and results["latent_dim"] == 50
    assert (
        f"1 seed (± over the test images), {run['active_units']} of 50 latent units active, 1 "
        "seed untrained (see results.json) |"
    ) in table
    assert "| VAE, one stochastic layer, k = 1 | 86.76 | 5000 | dynamic |" in table
    assert (tmp_path / "figure-mlp-vae-iwae.png").stat().st_size > 10_000
    # a second call reads the finished seed instead of training it again
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("retrained"))
    with pytest.warns(UntrainedModelWarning):
        assert run_nll(trial(), tmp_path, progress=False)["runs"] == [run]


def test_a_benchmark_model_that_learned_is_not_called_untrained(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)
        results = run_nll(trial(train=TrainConfig(10), train_size=None), tmp_path, progress=False)
    assert results["runs"][0]["reconstruction_spread"] > MIN_SPREAD  # 630 steps: 0.17
    run = Run(tmp_path / "runs" / "seed0")  # its units counted on the estimate's test images
    images = evaluation_set(run, first=results["images"]).float()
    assert results["runs"][0]["active_units"] == usage(run.load_model(), images).active_units
    assert results["untrained_runs"] == []
    assert "untrained" not in (tmp_path / "table.md").read_text()


def test_only_seeds_with_a_recorded_spread_below_the_threshold_are_untrained():
    runs = [
        {"seed": 0, "reconstruction_spread": 0.2},
        {"seed": 1, "reconstruction_spread": 0.01},
        {"seed": 2, "reconstruction_spread": None},  # a pixel decoder: not measured
        {"seed": 3},  # written before the check
    ]
    assert untrained_runs(runs) == [{"seed": 1}]


def test_a_pixel_decoder_records_no_spread_and_is_not_drawn(digits, monkeypatch):
    """Its reconstruction is an image drawn pixel by pixel with the global random state:
    not reproducible, and not the input's doing alone."""
    model = build(ModelConfig("pixel-vae"))
    monkeypatch.setattr(model.likelihood, "decode", lambda *a: pytest.fail("drawn"))
    assert recorded_spread(model, digits) is None
    assert isinstance(recorded_spread(build(ModelConfig("mlp-vae-iwae")), digits), float)


def test_results_written_before_the_check_draw_the_same_row():
    results = json.loads((DOCS_RESULTS / "nll-mlp-vae-iwae.json").read_text())
    assert "untrained_runs" not in results
    row = markdown_table(results).splitlines()[2]
    assert row.endswith("| measured: 1,000 test images, 1 seed (± over the test images) |")
    flagged = markdown_table({**results, "untrained_runs": [{"seed": 0}]}).splitlines()[2]
    assert flagged == row.removesuffix(" |") + ", 1 seed untrained (see results.json) |"


def test_the_benchmark_refuses_what_cannot_give_an_estimate(tmp_path, capsys):
    assert main(["bench", "nll", "--model", "ae", "--out", str(tmp_path / "ae")]) == 1
    assert "--model ae has no q(z|x)" in capsys.readouterr().err
    with pytest.raises(SettingError, match="dataset must be one of mnist, mnist-sample"):
        run_nll(trial(dataset="fashion-mnist"), tmp_path / "f", progress=False)
    with pytest.raises(SettingError, match="iw_samples must be"):
        run_nll(trial(iw_samples=0), tmp_path / "k", progress=False)
    run_nll(trial(iw_samples=5), tmp_path / "b", progress=False)
    with pytest.raises(VaelabError, match="other settings"):
        run_nll(trial(iw_samples=5, train_size=64), tmp_path / "b", progress=False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--iw-samples", "99999999999"], "--iw-samples 99,999,999,999 is more samples per image"),
        (["--lr-decay", "nan"], "--lr-decay must be a finite number above 0"),
        (["--lr-decay", "0"], "--lr-decay must be a finite number above 0, got 0.0"),
        (["--lr-milestones", "5,2"], "--lr-milestones must be increasing epochs"),
        (
            ["--lr-decay", "0.5"],
            "--lr-decay 0.5 multiplies the learning rate after each of "
            "--lr-milestones, and none is given",
        ),  # fmt: skip
    ],
)
def test_a_refused_benchmark_writes_nothing_so_the_mended_command_can_use_its_out(
    tmp_path, capsys, flags, message
):
    out = tmp_path / "nll"
    assert main(["bench", "nll", "--dataset", "mnist-sample", *flags, "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_estimate_of_more_samples_than_any_could_wait_for_is_refused(tmp_path, capsys):
    model = build(ModelConfig("vae"))
    with pytest.raises(SettingError, match="samples 100,001 is more samples per image"):
        importance_nll(model, torch.rand(2, 1, 28, 28), 100_001)
