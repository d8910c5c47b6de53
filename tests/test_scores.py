import math

import pytest
import torch
import torch.nn.functional as F

from vaelab import batching, scores
from vaelab.cli.anomaly import SCORE_NAMES
from vaelab.config import ModelConfig
from vaelab.data import load
from vaelab.errors import VaelabError
from vaelab.likelihood import SAMPLE_CHUNK
from vaelab.models import build
from vaelab.seeding import keyed_generator


@pytest.fixture(scope="module")
def images():
    return load("mnist-sample", "test").first(24).float()


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build(ModelConfig("vae", latent_dim=3)).eval()


@pytest.fixture(scope="module")
def ae():
    torch.manual_seed(0)
    return build(ModelConfig("ae")).eval()


def log_normal_by_hand(z, mean, std):
    return torch.distributions.Normal(mean, std).log_prob(z).sum(1)


def draws(shape, samples, seed=0):
    """The noise of the sampled scores: each image's own keyed stream, its first draws."""
    images, latent = shape
    noise = [torch.randn(SAMPLE_CHUNK, latent, generator=keyed_generator(seed, i))[:samples]
             for i in range(images)]  # fmt: skip
    return list(torch.stack(noise).unbind(1))


@torch.no_grad()
def test_reconstruction_scores_by_hand(vae, images):
    probs = torch.sigmoid(vae.decode(vae.posterior(images)[0]))
    bce = F.binary_cross_entropy(probs, images, reduction="none").sum((1, 2, 3))
    mse = (probs - images).square().sum((1, 2, 3))
    torch.testing.assert_close(scores.recon_bce(vae, images), bce, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(scores.recon_mse(vae, images), mse, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_elbo_by_hand(vae, images):
    mu, logvar = vae.posterior(images)
    std = torch.exp(0.5 * logvar)
    recon = torch.stack(
        [
            F.binary_cross_entropy_with_logits(
                vae.decode(mu + std * eps), images, reduction="none"
            ).sum((1, 2, 3))
            for eps in draws(mu.shape, 4)
        ]
    ).mean(0)
    kl = 0.5 * (mu.square() + std.square() - 1 - logvar).sum(1)
    torch.testing.assert_close(scores.elbo(vae, images, samples=4), recon + kl)


@torch.no_grad()
def test_iwae_with_one_sample_is_the_single_sample_elbo(vae, images):
    mu, logvar = vae.posterior(images)
    std = torch.exp(0.5 * logvar)
    (eps,) = draws(mu.shape, 1)
    z = mu + std * eps
    log_px_z = -F.binary_cross_entropy_with_logits(vae.decode(z), images, reduction="none").sum(
        (1, 2, 3)
    )
    log_prior = log_normal_by_hand(z, torch.zeros_like(z), torch.ones_like(z))
    log_q = log_normal_by_hand(z, mu, std)
    expected = -(log_px_z + log_prior - log_q)
    torch.testing.assert_close(scores.iwae(vae, images, samples=1), expected, rtol=1e-5, atol=1e-3)


@torch.no_grad()
def test_iwae_is_a_tighter_bound_than_elbo(vae, images):
    iwae = scores.iwae(vae, images, samples=50)
    elbo = scores.elbo(vae, images, samples=50)
    assert iwae.mean() < elbo.mean()
    # never below an image's true -log p(x) >= 0 for Bernoulli pixels in [0, 1]
    assert (iwae > 0).all()


@torch.no_grad()
def test_iwae_is_logsumexp_stable_for_large_k(vae, images):
    values = scores.iwae(vae, images, samples=200)
    assert torch.isfinite(values).all()


@torch.no_grad()
def test_latent_score_by_hand(vae, images):
    mu = vae.posterior(images)[0]
    expected = 0.5 * (mu.square() + math.log(2 * math.pi)).sum(1)
    torch.testing.assert_close(scores.latent(vae, images), expected)


def test_sampled_scores_are_reproducible_and_seeded(vae, images):
    first = scores.score(vae, images, "elbo", samples=2, seed=1)
    torch.testing.assert_close(scores.score(vae, images, "elbo", samples=2, seed=1), first)
    assert not torch.equal(scores.score(vae, images, "elbo", samples=2, seed=2), first)


def test_scores_do_not_depend_on_the_batch_size(vae, images, monkeypatch):
    whole = scores.score(vae, images, "recon-bce")
    monkeypatch.setattr(batching, "CPU_ROWS", 5)
    torch.testing.assert_close(scores.batched(lambda x: x.sum((1, 2, 3)), images, 5),
                               images.sum((1, 2, 3)))  # fmt: skip
    torch.testing.assert_close(scores.score(vae, images, "recon-bce"), whole)


def test_pixel_maps_have_the_image_shape(ae, images):
    maps = scores.pixel_errors(ae, images)
    assert maps.shape == (len(images), 28, 28)
    torch.testing.assert_close(maps.sum((1, 2)), scores.recon_bce(ae, images))


@pytest.mark.parametrize("name", ["elbo", "iwae", "latent"])
def test_ae_takes_only_reconstruction_scores(ae, images, name):
    with pytest.raises(VaelabError, match="needs a model with a posterior.*recon-bce"):
        scores.score(ae, images, name)


def test_bad_score_options_are_clear(vae, images):
    with pytest.raises(VaelabError, match="unknown score 'nll'"):
        scores.score(vae, images, "nll")
    with pytest.raises(VaelabError, match="at least 1"):
        scores.iwae(vae, images, samples=0)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(4, 28, 28), r"shaped \(N, 1, 28, 28\)"),
        (torch.rand(4, 1, 32, 32), r"shaped \(N, 1, 28, 28\)"),
        (torch.randint(0, 255, (4, 1, 28, 28), dtype=torch.uint8), "floats in"),
        (torch.full((4, 1, 28, 28), float("nan")), "NaN pixels"),
        (torch.rand(0, 1, 28, 28), "empty"),
        (torch.rand(4, 1, 28, 28).numpy(), "torch tensor"),
    ],
    ids=["no-channel", "32x32", "uint8", "nan", "empty", "numpy"],
)
def test_images_a_score_cannot_read_are_refused_with_what_to_do(vae, bad, message):
    for name in ("recon-mse", "elbo", "iwae"):
        with pytest.raises(VaelabError, match=message):
            scores.score(vae, bad, name)


def test_the_cli_offers_every_score():
    assert sorted(SCORE_NAMES) == sorted(scores.SCORES)


def test_recon_mse_edge_is_the_error_per_unit_of_edge_by_hand(vae, images):
    recon = torch.sigmoid(vae.decode(vae.encode(images))).detach().numpy()[:, 0]
    pixels = images.numpy()[:, 0]
    for i in range(3):
        x, r = pixels[i].astype(float), recon[i].astype(float)
        error = sum((x[a, b] - r[a, b]) ** 2 for a in range(28) for b in range(28))
        edges = sum((x[a + 1, b] - x[a, b]) ** 2 for a in range(27) for b in range(28))
        edges += sum((x[a, b + 1] - x[a, b]) ** 2 for a in range(28) for b in range(27))
        assert scores.score(vae, images, "recon-mse-edge")[i].item() == pytest.approx(
            error / edges, rel=1e-4
        )


def test_recon_mse_edge_latent_weighs_the_code_distance_by_hand(vae, images):
    code = vae.encode(images).detach().numpy().astype(float)
    relative = scores.score(vae, images, "recon-mse-edge").numpy()
    combined = scores.score(vae, images, "recon-mse-edge-latent").numpy()
    for i in range(3):
        distance = sum(value**2 for value in code[i])
        assert combined[i] == pytest.approx(relative[i] * distance**0.3, rel=1e-4)


def test_recon_mse_edge_latent_needs_a_posterior(ae, images):
    with pytest.raises(VaelabError, match="needs a model with a posterior"):
        scores.score(ae, images, "recon-mse-edge-latent")


def test_recon_mse_edge_of_a_blank_image_is_finite(vae):
    blank = torch.zeros(2, 1, 28, 28)
    value = scores.score(vae, blank, "recon-mse-edge")
    expected = scores.score(vae, blank, "recon-mse") / scores.EDGE_FLOOR
    assert torch.isfinite(value).all() and torch.allclose(value, expected)


def test_samples_are_refused_for_a_score_that_draws_none():
    for sampled in ("elbo", "iwae"):
        scores.check_samples_drawn(sampled, 3)
    scores.check_samples_drawn("recon-bce", None)
    with pytest.raises(VaelabError, match="score recon-bce draws none: leave samples out"):
        scores.check_samples_drawn("recon-bce", 3)
