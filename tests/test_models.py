import pytest
import torch
import torch.nn.functional as F

from vaelab.config import ModelConfig
from vaelab.errors import VaelabError
from vaelab.models import AE, MODELS, VAE, build, register
from vaelab.models.blocks import Pool, UpConv


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_article():
    assert n_params(build(ModelConfig(name="ae"))) == 4385
    assert n_params(build(ModelConfig(name="vae", latent_dim=2))) == 5285


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_shapes_through_the_article_layers(name):
    model = build(ModelConfig(name=name, latent_dim=3))
    out = model(torch.rand(5, 1, 28, 28))
    assert out.logits.shape == (5, 1, 28, 28)
    assert all(v.shape == (5,) for v in out.losses.values())
    code = model.encode(torch.rand(5, 1, 28, 28))
    assert code.shape == (5, model.latent_dim)
    assert model.decode(code).shape == (5, 1, 28, 28)


def test_encoder_downsamples_28_14_7_4_and_decoder_goes_back():
    model = AE()
    x = torch.rand(2, 1, 28, 28)
    sizes = []
    for layer in model.encoder:
        x = layer(x)
        if isinstance(layer, Pool):
            sizes.append(x.shape[-1])
    assert sizes == [14, 7, 4]
    for layer in model.decoder:
        x = layer(x)
        if isinstance(layer, UpConv):  # upsample x2, then conv: 'valid' trims 16 to 14
            sizes.append(x.shape[-1])
    assert sizes == [14, 7, 4, 8, 14, 28]


def test_vae_loss_is_784_mean_bce_plus_kl_by_hand():
    torch.manual_seed(0)
    model = VAE(latent_dim=2)
    x = torch.rand(4, 1, 28, 28)
    out = model(x)
    p = torch.sigmoid(out.logits)
    bce = -(x * torch.log(p) + (1 - x) * torch.log(1 - p))
    recon = 784 * bce.flatten(1).mean(1)
    mu, log_var = out.z_mean, out.z_log_var
    kl = -0.5 * (1 + log_var - mu**2 - torch.exp(log_var)).sum(1)
    torch.testing.assert_close(out.losses["recon"], recon, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.losses["kl"], kl)
    torch.testing.assert_close(out.loss, (recon + kl).mean(), rtol=1e-5, atol=1e-3)


def test_ae_loss_is_keras_mean_pixel_bce():
    model = AE()
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    expected = F.binary_cross_entropy(torch.sigmoid(out.logits), x)
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)


def test_logit_loss_stays_finite_where_sigmoid_saturates():
    model = build(ModelConfig(name="ae"))  # zero biases: every logit is the last bias
    with torch.no_grad():
        model.decoder[-1].bias.fill_(200.0)
    out = model(torch.zeros(1, 1, 28, 28))
    assert torch.isfinite(out.loss)
    assert out.loss.item() == pytest.approx(200.0, rel=1e-4)


def test_vae_samples_from_its_prior():
    model = build(ModelConfig(name="vae"))
    images = model.sample(6, generator=torch.Generator().manual_seed(1))
    assert images.shape == (6, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1


def test_glorot_init_zeroes_biases_and_bounds_weights():
    model = build(ModelConfig(name="ae", init="glorot"))
    conv = model.encoder[0]
    assert torch.count_nonzero(conv.bias) == 0
    bound = (6 / (9 * 1 + 9 * 16)) ** 0.5
    assert conv.weight.abs().max() <= bound
    torch_init = build(ModelConfig(name="ae", init="torch"))
    assert torch.count_nonzero(torch_init.encoder[0].bias) > 0


def test_registry_builds_new_models_and_rejects_unknown_names():
    register("tiny-vae", lambda config, channels: VAE(config.latent_dim + 1, channels))
    try:
        assert build(ModelConfig(name="tiny-vae", latent_dim=2)).latent_dim == 3
    finally:
        del MODELS["tiny-vae"]
    with pytest.raises(VaelabError, match="unknown model 'nope'.*ae, vae"):
        build(ModelConfig(name="nope"))


def test_rgb_models_reconstruct_three_channels():
    model = build(ModelConfig(name="vae"), channels=3)
    assert model(torch.rand(2, 3, 28, 28)).logits.shape == (2, 3, 28, 28)
