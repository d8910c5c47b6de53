"""A model, a score and a continual strategy registered by a user's own module, as a user
would write them (imported by the tests)."""

from torch import Tensor

from vaelab.config import ModelConfig
from vaelab.continual.strategies import Stage, Strategy, register_strategy
from vaelab.data import Dataset
from vaelab.models import VAE, Model, register
from vaelab.scores import Score, over_batches, register_score


def small_mlp_vae(config: ModelConfig, shape: tuple[int, int, int]) -> VAE:
    parts = ModelConfig("mlp-vae", latent_dim=config.latent_dim).resolved()
    parts.encoder.widths = parts.decoder.widths = [32]
    return VAE(parts, shape)


register("user-mlp-vae", small_mlp_vae, "an MLP VAE with 32 hidden units, from a user's module")


def worst_pixel_of_batch(model: Model, x: Tensor) -> Tensor:
    """The largest squared error of any one pixel of the reconstruction."""
    return (model.decode(model.encode(x)) - x).square().flatten(1).amax(1)


register_score(
    "user-worst-pixel",
    Score(
        lambda model, images: over_batches(worst_pixel_of_batch, model, images),
        "the largest squared error of one pixel",
        per_batch=worst_pixel_of_batch,
    ),
)


def previous_digit(stage: Stage) -> Dataset:
    """The new digit and the real images of the digit learned just before it."""
    return stage.train.with_classes([stage.past[-1], stage.new])


register_strategy("user-previous-digit", Strategy("the new and the last digit", previous_digit))
