"""The importance-sampled -log p(x): exact where it can be checked, seeded, bounded in memory;
dynamic binarisation; `vaelab eval --nll` and `vaelab bench nll`."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from vaelab import likelihood, scores
from vaelab.config import ModelConfig
from vaelab.data import load
from vaelab.errors import SettingError, VaelabError
from vaelab.likelihood import SAMPLE_CHUNK, importance_nll, nll_curve
from vaelab.models import build
from vaelab.models.base import Capabilities, Model
from vaelab.models.losses import LOG_2PI, log_normal
from vaelab.seeding import keyed_generator

DATA, LATENT, SIGMA = 8, 2, 0.5


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
    monkeypatch.setattr(likelihood, "ROWS", 30)  # one image per pass
    torch.testing.assert_close(scores.elbo(vae, digits, 30), whole)


def test_memory_does_not_grow_with_k(linear, points, monkeypatch):
    rows = []
    decode = linear.decode
    monkeypatch.setattr(linear, "decode", lambda z, y=None: rows.append(len(z)) or decode(z))
    importance_nll(linear, points, 1000, batch=4)
    assert max(rows) == 4 * SAMPLE_CHUNK
    assert sum(rows) == 1000 * len(points)


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
