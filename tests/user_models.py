"""A model registered by a user's own module, as a user would write it (imported by the tests)."""

from vaelab.config import ModelConfig
from vaelab.models import VAE, register


def small_mlp_vae(config: ModelConfig, shape: tuple[int, int, int]) -> VAE:
    parts = ModelConfig("mlp-vae", latent_dim=config.latent_dim).resolved()
    parts.encoder.widths = parts.decoder.widths = [32]
    return VAE(parts, shape)


register("user-mlp-vae", small_mlp_vae, "an MLP VAE with 32 hidden units, from a user's module")
