import math

import pytest
import torch
import torch.nn.functional as F

from vaelab.config import ModelConfig, RunConfig
from vaelab.errors import SettingError, VaelabError
from vaelab.models import MODELS, VAE, build, parameter_count, register
from vaelab.models.blocks import Pool, UpConv
from vaelab.models.losses import gaussian_kl, log_normal
from vaelab.presets import PRESETS

PARAMETERS = {
    "ae": 4385,
    "vq-vae": 4521,  # the ae's, a 1x1 conv (72) and the codebook's 8x8 matrix (64)
    "vae": 5285,
    "beta-vae": 8373,
    "cvae": 35085,
    "iwae": 5285,
    "mlp-vae": 807700,  # 784-512-2-512-784
    "mlp-vae-iwae": 425284,  # 784-200-200-50-200-200-784
    "resnet-vae": 711233,
    "pixel-vae": 1943297,  # 784-400-400-32 MLPs, 4 maps per pixel into a 32-channel pixelcnn
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_article():
    assert n_params(build(ModelConfig(name="ae"))) == 4385
    assert n_params(build(ModelConfig(name="vae", latent_dim=2))) == 5285


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_has_its_parameter_count(name):
    assert parameter_count(build(ModelConfig(name))) == PARAMETERS[name]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_config_survives_a_round_trip(name):
    config = RunConfig(model=ModelConfig(name).resolved())
    again = RunConfig.from_dict(config.to_dict())
    assert again == config
    assert again.model.encoder is not None and again.model.objective is not None
    assert parameter_count(build(again.model)) == PARAMETERS[name]


def test_a_preset_takes_another_latent_size_and_a_saved_old_config_still_reads():
    assert build(ModelConfig("mlp-vae-iwae", latent_dim=20)).latent_dim == 20
    old = RunConfig.from_dict({"model": {"name": "vae", "latent_dim": 2, "init": "glorot"}})
    assert old.model == ModelConfig("vae").resolved()


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
    model = build(ModelConfig("ae"))
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
    model = build(ModelConfig("vae"))
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
    model = build(ModelConfig("ae"))
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
    def tiny(config, shape):
        return VAE(ModelConfig("vae", latent_dim=config.latent_dim + 1).resolved(), shape)

    register("tiny-vae", tiny)
    try:
        assert build(ModelConfig(name="tiny-vae", latent_dim=2)).latent_dim == 3
    finally:
        del MODELS["tiny-vae"]
    with pytest.raises(VaelabError, match="unknown model 'nope'.*ae, vae"):
        build(ModelConfig(name="nope"))
    with pytest.raises(VaelabError, match="is a preset"):
        register("vae", tiny)


def test_rgb_models_reconstruct_three_channels():
    model = build(ModelConfig(name="vae"), shape=(3, 28, 28))
    assert model(torch.rand(2, 3, 28, 28)).logits.shape == (2, 3, 28, 28)


def objective_model(**objective):
    config = ModelConfig("vae", latent_dim=3).resolved()
    for key, value in objective.items():
        setattr(config.objective, key, value)
    torch.manual_seed(0)
    return build(config)


def test_beta_scales_the_kl_term_and_nothing_else():
    x = torch.rand(4, 1, 28, 28)
    plain, weighted = objective_model(), objective_model(beta=4.0)
    torch.manual_seed(1)
    a = plain(x)
    torch.manual_seed(1)
    b = weighted(x)
    torch.testing.assert_close(b.losses["recon"], a.losses["recon"])
    torch.testing.assert_close(b.losses["kl"], 4 * gaussian_kl(a.z_mean, a.z_log_var))


def test_kl_warm_up_is_linear_in_optimiser_steps_and_saved_with_the_weights():
    model = objective_model(beta=2.0, warmup_steps=4)
    weights = []
    for _ in range(6):
        weights.append(model.objective.kl_weight())
        model.after_step()
    assert weights == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert model.state_dict()["objective.steps"].item() == 6
    x = torch.rand(2, 1, 28, 28)
    out = model(x)
    torch.testing.assert_close(out.losses["kl"], 2.0 * gaussian_kl(out.z_mean, out.z_log_var))


@pytest.mark.parametrize("name", ["beta", "warmup_steps", "capacity_steps"])
def test_a_negative_objective_setting_is_refused_by_name(name):
    with pytest.raises(SettingError, match=f"^{name} of the elbo objective") as refused:
        objective_model(**{name: -1})
    assert refused.value.as_flags().startswith("--" + name.replace("_", "-"))


def test_a_latent_size_below_one_is_refused_by_name():
    with pytest.raises(SettingError, match="^latent_dim must be at least 1, got 0"):
        build(ModelConfig("vae", latent_dim=0))


def test_no_model_holds_float64_tensors_which_mps_cannot_hold():
    configs = [ModelConfig(name).resolved() for name in PRESETS]
    scheduled = objective_model(warmup_steps=4, capacity=5.0, capacity_steps=4)
    models = [build(config) for config in configs] + [scheduled]
    for model in models:
        assert all(v.dtype != torch.float64 for v in model.state_dict().values())


def test_a_step_count_saved_as_float64_by_older_versions_loads_and_counts_on():
    model = objective_model(beta=2.0, warmup_steps=4)
    older = {**model.state_dict(), "objective.steps": torch.tensor(2.0, dtype=torch.float64)}
    model.load_state_dict(older)
    assert model.objective.kl_weight() == 1.0
    model.after_step()
    assert model.objective.steps.dtype == torch.long and model.objective.kl_weight() == 1.5


def test_capacity_target_penalises_the_distance_to_a_growing_c():
    model = objective_model(beta=10.0, capacity=20.0, capacity_steps=10)
    for _ in range(5):
        model.after_step()  # C = 10 nats now
    out = model(torch.rand(3, 1, 28, 28))
    kl = gaussian_kl(out.z_mean, out.z_log_var)
    torch.testing.assert_close(out.losses["kl_capacity"], 10.0 * (kl - 10.0).abs())


def test_the_k_sample_bound_by_hand_and_with_k_1_it_is_a_one_sample_elbo():
    x = torch.rand(5, 1, 28, 28)
    for k in (1, 7):
        model = objective_model(name="iwae", samples=k)
        torch.manual_seed(3)
        out = model(x)
        mean, log_var = model.posterior(x)
        torch.manual_seed(3)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(k, *mean.shape)
        log_w = torch.stack([
            -model.likelihood.nll(model.decode(z_k), x)
            + log_normal(z_k, torch.zeros_like(z_k), torch.zeros_like(z_k))
            - log_normal(z_k, mean, log_var)
            for z_k in z
        ])  # fmt: skip
        expected = -(torch.logsumexp(log_w, 0) - math.log(k))
        torch.testing.assert_close(out.losses["iwae"], expected, rtol=1e-5, atol=1e-3)
    elbo = objective_model()
    torch.manual_seed(3)
    single = elbo(x)
    z = single.latent
    q = log_normal(z, single.z_mean, single.z_log_var)
    p_z = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    # one sample: -log p(x|z) - log p(z) + log q(z|x); its mean over z is the ELBO's
    torch.testing.assert_close(out_k1(x), single.losses["recon"] - p_z + q, rtol=1e-5, atol=1e-3)


def out_k1(x):
    model = objective_model(name="iwae", samples=1)
    torch.manual_seed(3)
    return model(x).losses["iwae"]


def test_gaussian_likelihood_by_hand():
    config = ModelConfig("vae", latent_dim=2).resolved()
    config.likelihood.name, config.likelihood.variance, config.likelihood.sigma = (
        "gaussian",
        "fixed",
        0.2,
    )
    model = build(config)
    x = torch.rand(2, 1, 28, 28)
    logits = torch.randn(2, 1, 28, 28)
    normal = torch.distributions.Normal(torch.sigmoid(logits), 0.2)
    expected = -normal.log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(model.likelihood.nll(logits, x), expected, rtol=1e-5, atol=1e-3)
    learned = ModelConfig("vae").resolved()
    learned.likelihood.name = "gaussian"
    assert "likelihood.log_sigma" in dict(build(learned).named_parameters())


def test_conditional_samples_depend_on_the_label_and_need_one():
    torch.manual_seed(0)
    model = build(ModelConfig("cvae")).eval()
    threes = model.sample(4, torch.Generator().manual_seed(1), torch.full((4,), 3))
    fives = model.sample(4, torch.Generator().manual_seed(1), torch.full((4,), 5))
    assert not torch.allclose(threes, fives)
    with pytest.raises(VaelabError, match="conditional: pass the images' labels"):
        model(torch.rand(2, 1, 28, 28))
    with pytest.raises(VaelabError, match=r"integers in 0..9"):
        model(torch.rand(2, 1, 28, 28), torch.tensor([1, 12]))


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "floats in \\[0, 1\\], got torch.uint8"),
        (torch.full((2, 1, 28, 28), 255.0), "must lie in \\[0, 1\\].*divide 0-255"),
        (torch.rand(2, 28, 28), "shaped \\(N, 1, 28, 28\\)"),
    ],
)
def test_models_refuse_wrong_inputs_with_the_fix(images, message):
    for name in ("ae", "vae"):
        with pytest.raises(VaelabError, match=message):
            build(ModelConfig(name))(images)
