"""Named models, as data: each preset is a `ModelConfig`'s parts and a line saying what it is for.

Torch-free, so the CLI can list and check model names without importing torch. A preset
is one entry in `PRESETS`; `vaelab.models.build` turns any filled-in `ModelConfig` into a
model, so a new preset needs no new code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from vaelab import plugins
from vaelab.errors import VaelabError

if TYPE_CHECKING:
    from vaelab.config import ModelConfig

DEFAULT_LATENT = 2


@dataclass(frozen=True)
class Preset:
    summary: str
    parts: dict[str, Any]


def _conv(widths: list[int]) -> dict[str, Any]:
    return {"family": "conv", "widths": widths, "depth": 1, "activation": "relu"}


def _mlp(widths: list[int], activation: str) -> dict[str, Any]:
    return {"family": "mlp", "widths": widths, "depth": 1, "activation": activation}


def _resnet(widths: list[int], depth: int) -> dict[str, Any]:
    return {"family": "resnet", "widths": widths, "depth": depth, "activation": "silu"}


ARTICLE = {"encoder": _conv([16, 8, 8]), "decoder": _conv([8, 8, 16])}
BERNOULLI = {"name": "bernoulli", "variance": "learned", "sigma": 0.1}  # sigma: if made gaussian
PIXELCNN = {**BERNOULLI, "name": "pixelcnn", "width": 32, "layers": 1}


def _objective(name: str = "elbo", **options: Any) -> dict[str, Any]:
    defaults = {"beta": 1.0, "warmup_steps": 0, "capacity": None, "capacity_steps": 0}
    return {"name": name, **defaults, "samples": 1, **options}


def _vae(latent: int, objective: dict[str, Any], conditional: bool = False, **nets: Any) -> dict:
    return {
        "kind": "vae",
        "latent_dim": latent,
        **(nets or ARTICLE),
        "likelihood": BERNOULLI,
        "objective": objective,
        "conditional": conditional,
    }


# fmt: off
PRESETS: dict[str, Preset] = {
    "ae": Preset(
        "the article's conv autoencoder (8x4x4 code, mean pixel BCE)",
        {**_vae(128, _objective("reconstruction")), "kind": "ae"},
    ),
    # The article's conv networks give a 4x4 grid of 8-vectors to quantise. The paper's 512
    # vectors, a fixed basis times a learned 8x8 matrix, are used (docs/models.md).
    "vq-vae": Preset(
        "the article's conv autoencoder, each of its 4x4 code's 8-vectors one of 512 learned "
        "ones (VQ-VAE, van den Oord et al. 2017)",
        {**_vae(128, _objective("reconstruction")), "kind": "vq", "codebook_size": 512},
    ),
    "vae": Preset(
        "the article's conv VAE (784 * mean BCE + KL), latent 2",
        _vae(2, _objective()),
    ),
    "beta-vae": Preset(
        "the article's conv VAE with KL weight beta = 4, latent 10 (Higgins et al. 2017)",
        _vae(10, _objective(beta=4.0)),
    ),
    # The cvae's latent size and KL weight were chosen by how often its samples are the digit
    # asked for (docs/models.md): a KL weight of 4 makes each label's posterior cover the prior.
    "cvae": Preset(
        "a wider conv VAE that sees the label (latent 2, KL weight 4): ask it for a digit",
        _vae(2, _objective(beta=4.0), conditional=True, encoder=_conv([32, 32, 16]),
             decoder=_conv([16, 32, 32])),
    ),
    "iwae": Preset(
        "the article's conv VAE trained on the K = 5 importance-weighted bound (Burda et al.)",
        _vae(2, _objective("iwae", samples=5)),
    ),
    "mlp-vae": Preset(
        "the Keras example's MLP VAE: 784-512-latent, ReLU, latent 2",
        _vae(2, _objective(), encoder=_mlp([512], "relu"), decoder=_mlp([512], "relu")),
    ),
    "mlp-vae-iwae": Preset(
        "the IWAE paper's one-stochastic-layer MLP: 784-200-200, tanh, latent 50",
        _vae(50, _objective(), encoder=_mlp([200, 200], "tanh"),
             decoder=_mlp([200, 200], "tanh")),
    ),
    "resnet-vae": Preset(
        "residual conv VAE (32, 64 channels, 2 blocks each), latent 32: the research default",
        _vae(32, _objective(), encoder=_resnet([32, 64], 2), decoder=_resnet([64, 32], 2)),
    ),
    "pixel-vae": Preset(
        "784-400-400 ReLU MLPs, latent 32, with an autoregressive decoder: 7x7 and 3x3 masked "
        "convs read each pixel's earlier neighbours (after PixelVAE, Gulrajani et al. 2017)",
        {**_vae(32, _objective(), encoder=_mlp([400, 400], "relu"),
                decoder=_mlp([400, 400], "relu")), "likelihood": PIXELCNN},
    ),
}
# fmt: on


def register_preset(name: str, summary: str, parts: dict[str, Any]) -> None:
    """Make `ModelConfig(name)` build a model from `parts` (fields of `ModelConfig`), here and
    in the benchmarks' workers (`vaelab.plugins`)."""
    from vaelab.config import ModelConfig  # the config module reads the presets
    from vaelab.models import MODELS  # which reads the presets too

    if name in MODELS:
        raise VaelabError(
            f"{name!r} is a registered model; register your preset under another name"
        )

    known = {f.name for f in fields(ModelConfig)} - {"name"}
    unknown = sorted(set(parts) - known) if isinstance(parts, dict) else None
    if unknown is None or unknown:
        raise VaelabError(
            f"the preset {name!r} takes its parts as a dict of ModelConfig's fields "
            f"({', '.join(sorted(known))}); got {unknown or type(parts).__name__}"
        )
    plugins.add(PRESETS, name, Preset(summary, parts), Preset, "preset")


def resolve(config: ModelConfig) -> ModelConfig:
    """A copy of `config` with the fields left as None filled in from its preset, and the
    parts a preset leaves out with their defaults (only the latent size, for a registered
    model's name)."""
    from vaelab.config import PARTS as kinds

    filled = copy.deepcopy(config)
    preset = PRESETS.get(config.name)
    for f in fields(filled):
        if getattr(filled, f.name) is None and preset is not None and f.name in preset.parts:
            value = copy.deepcopy(preset.parts[f.name])
            setattr(filled, f.name, kinds[f.name](**value) if f.name in kinds else value)
    if preset is not None:
        defaults = {"kind": "vae", "conditional": False, "latent_dim": DEFAULT_LATENT}
        for name, value in defaults.items():
            if getattr(filled, name) is None:
                setattr(filled, name, value)
        for name, kind in kinds.items():
            if getattr(filled, name) is None:
                setattr(filled, name, kind())
    if filled.latent_dim is None:
        filled.latent_dim = DEFAULT_LATENT
    return filled
