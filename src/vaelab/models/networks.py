"""Encoder and decoder families, built from a `NetworkConfig` for an image shape.

An encoder maps images (N, C, H, W) to a feature map or vector; `encoder` returns it with
the shape of its output. A decoder maps its input (of the shape `decoder` returns with
it) to pixel logits (N, C, H, W). Models put heads between the two.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaelab.config import NetworkConfig
from vaelab.errors import VaelabError
from vaelab.models import blocks

Shape = tuple[int, ...]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "leaky-relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise VaelabError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _check(config: NetworkConfig, shape: Shape) -> None:
    if config.family not in FAMILIES:
        raise VaelabError(
            f"unknown network family {config.family!r}; choose one of {', '.join(FAMILIES)}"
        )
    if not config.widths or min(config.widths) < 1 or config.depth < 1:
        raise VaelabError(
            f"a {config.family} network needs positive widths and depth, got widths "
            f"{config.widths} and depth {config.depth}"
        )
    if config.family == "conv" and (len(config.widths) != 3 or shape[1:] != (28, 28)):
        raise VaelabError(
            "the article's conv family takes 28x28 images and three widths, got "
            f"{shape[1]}x{shape[2]} images and widths {config.widths}; use image_size=28 "
            "(--image-size 28) or the mlp or resnet family"
        )
    if config.family == "resnet":
        factor = 2 ** len(config.widths)
        if shape[1] % factor or shape[2] % factor:
            raise VaelabError(
                f"a resnet with {len(config.widths)} stages halves the image size "
                f"{len(config.widths)} times, so {shape[1]}x{shape[2]} images must be "
                f"multiples of {factor}; use fewer widths or another image_size"
            )


def encoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    """The encoder for images of `shape` (C, H, W), and the shape of its output."""
    _check(config, shape)
    return FAMILIES[config.family][0](config, shape)


def decoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    """The decoder to images of `shape` (C, H, W), and the shape of its input."""
    _check(config, shape)
    return FAMILIES[config.family][1](config, shape)


def conv_encoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    w = config.widths
    layers = [
        blocks.InputConv(shape[0], w[0]), blocks.pool(), activation(config.activation),
        blocks.conv(w[0], w[1]), blocks.pool(), activation(config.activation),
        blocks.conv(w[1], w[2]), blocks.pool(), activation(config.activation),
    ]  # fmt: skip
    return nn.Sequential(*layers), (w[2], 4, 4)


def conv_decoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    """4 -> 8 -> 16 -> 14 ('valid') -> 28, each layer computed the way measured fastest."""
    w = config.widths
    layers = [
        blocks.conv(w[0], w[0]), activation(config.activation),
        blocks.UpConv(w[0], w[1], method="upsample"), activation(config.activation),
        blocks.UpConv(w[1], w[2], padding=0, method="transposed"), activation(config.activation),
        blocks.UpConv(w[2], shape[0], method="phases"),
    ]  # fmt: skip
    return nn.Sequential(*layers), (w[0], 4, 4)


def mlp_encoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    sizes = [math.prod(shape), *config.widths]
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(n_in, n_out), activation(config.activation)]
    return nn.Sequential(*layers), (sizes[-1],)


def mlp_decoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    sizes = [*config.widths, math.prod(shape)]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(n_in, n_out), activation(config.activation)]
    layers[-1] = nn.Unflatten(1, shape)  # logits: no activation after the last layer
    return nn.Sequential(*layers), (sizes[0],)


class ResidualBlock(nn.Module):
    """x + conv(act(conv(act(x)))): two 3x3 convs that learn a correction to their input."""

    def __init__(self, width: int, name: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            activation(name), blocks.conv(width, width), activation(name), blocks.conv(width, width)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def resnet_encoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    layers: list[nn.Module] = []
    channels = shape[0]
    for width in config.widths:
        layers.append(nn.Conv2d(channels, width, 3, stride=2, padding=1))
        layers += [ResidualBlock(width, config.activation) for _ in range(config.depth)]
        channels = width
    layers.append(activation(config.activation))
    factor = 2 ** len(config.widths)
    return nn.Sequential(*layers), (channels, shape[1] // factor, shape[2] // factor)


def resnet_decoder(config: NetworkConfig, shape: Shape) -> tuple[nn.Module, Shape]:
    layers: list[nn.Module] = []
    widths = [*config.widths, shape[0]]
    for width, next_width in zip(widths, widths[1:], strict=False):
        layers += [ResidualBlock(width, config.activation) for _ in range(config.depth)]
        layers += [
            activation(config.activation),
            blocks.UpConv(width, next_width, method="upsample"),
        ]
    factor = 2 ** len(config.widths)
    return nn.Sequential(*layers), (widths[0], shape[1] // factor, shape[2] // factor)


FAMILIES = {
    "conv": (conv_encoder, conv_decoder),
    "mlp": (mlp_encoder, mlp_decoder),
    "resnet": (resnet_encoder, resnet_decoder),
}
