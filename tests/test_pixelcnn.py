"""The autoregressive likelihood: each pixel's logit sees only the pixels before it, an image
is scored in one pass, and what depends on drawing pixels one at a time says so."""

import pytest
import torch

from vaelab.config import LikelihoodConfig, ModelConfig
from vaelab.errors import VaelabError
from vaelab.likelihood import SAMPLE_CHUNK, importance_nll
from vaelab.models import build
from vaelab.models.likelihoods import PixelCNN, likelihood
from vaelab.models.losses import bernoulli_nll, log_normal
from vaelab.seeding import keyed_generator


def tiny_pixel_vae(layers: int = 1):
    torch.manual_seed(0)
    p_x = LikelihoodConfig("pixelcnn", width=8, layers=layers)
    return build(ModelConfig("pixel-vae", latent_dim=3, likelihood=p_x)).eval()


@pytest.mark.parametrize("layers", [0, 2])
def test_a_pixel_logit_depends_only_on_the_pixels_before_it(layers):
    torch.manual_seed(1)
    p_x = PixelCNN(1, width=8, layers=layers)
    out = torch.randn(1, PixelCNN.FEATURES, 12, 12)
    x = torch.rand(1, 1, 12, 12, requires_grad=True)
    for row, col in [(0, 0), (5, 7), (11, 11), (6, 0)]:
        (grad,) = torch.autograd.grad(p_x.logits(out, x)[0, 0, row, col], x)
        order = torch.arange(144).view(12, 12)
        later = order >= row * 12 + col
        assert grad[0, 0][later].abs().max() == 0, (row, col)
        if (row, col) != (0, 0):
            assert grad[0, 0][~later].abs().max() > 0, (row, col)


def test_the_elbo_scores_each_image_with_its_own_earlier_pixels():
    model = tiny_pixel_vae()
    x = (torch.rand(4, 1, 28, 28) < 0.3).float()
    torch.manual_seed(2)
    out = model(x)
    mean, log_var = model.posterior(x)
    torch.manual_seed(2)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    logits = model.likelihood.logits(model.decoder_output(z), x)
    torch.testing.assert_close(out.losses["recon"], bernoulli_nll(logits, x))
    torch.testing.assert_close(out.logits, logits)
    # K = 1 of the estimator is that one-sample bound, for the estimator's own first draw
    eps = torch.stack([torch.randn(SAMPLE_CHUNK, 3, generator=keyed_generator(4, i))[0]
                       for i in range(4)])  # fmt: skip
    z = mean + torch.exp(0.5 * log_var) * eps
    logits = model.likelihood.logits(model.decoder_output(z), x)
    zero = torch.zeros_like(z)
    bound = -bernoulli_nll(logits, x) + log_normal(z, zero, zero) - log_normal(z, mean, log_var)
    torch.testing.assert_close(importance_nll(model, x, 1, seed=4), -bound)


def test_sampling_draws_bits_one_pixel_at_a_time_and_repeats_for_a_seed():
    model = tiny_pixel_vae(layers=0)
    with torch.inference_mode():
        a = model.sample(3, torch.Generator().manual_seed(5))
        b = model.sample(3, torch.Generator().manual_seed(5))
        c = model.sample(3, torch.Generator().manual_seed(6))
    assert a.shape == (3, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert model.capabilities.autoregressive
    assert not build(ModelConfig("vae")).capabilities.autoregressive


@pytest.mark.parametrize("layers", [0, 2])
def test_drawing_reads_each_pixel_from_its_window_as_the_whole_image_would(layers):
    torch.manual_seed(3)
    p_x = PixelCNN(1, width=8, layers=layers)
    out = torch.randn(2, PixelCNN.FEATURES, 14, 14)
    with torch.inference_mode():
        drawn = p_x.decode(out, torch.Generator().manual_seed(1))
        noise, x = torch.Generator().manual_seed(1), torch.zeros(2, 1, 14, 14)
        for row in range(14):
            for col in range(14):
                p = torch.sigmoid(p_x.logits(out, x)[:, :, row, col])
                x[:, :, row, col] = (torch.rand(p.shape, generator=noise) < p).float()
        torch.testing.assert_close(drawn, p_x.logits(out, x))


def test_what_cannot_take_an_autoregressive_decoder_says_so():
    with pytest.raises(VaelabError, match="autoregressive, for a VAE"):
        build(ModelConfig("ae", likelihood=LikelihoodConfig("pixelcnn")))
    with pytest.raises(VaelabError, match="one-channel images"):
        build(ModelConfig("pixel-vae"), shape=(3, 28, 28))
    with pytest.raises(VaelabError, match="width >= 1"):
        likelihood(LikelihoodConfig("pixelcnn", width=0))
    with pytest.raises(VaelabError, match="unknown likelihood 'nope'; choose one of bernoulli"):
        likelihood(LikelihoodConfig("nope"))
