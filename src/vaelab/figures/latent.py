"""What the latent figures show, computed without drawing: codes, 2-D views, grids, walks.

Kept apart from matplotlib so the numbers behind a figure can be tested
directly (a different decoder gives a different manifold) and reused by the
GIF and report code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vaelab.errors import VaelabError
from vaelab.models import Model
from vaelab.scores import batched


@dataclass
class View:
    """2-D points for a scatter and how they were obtained (axis names, a title note).

    `origin + point @ basis` takes a point of the view back to the latent space, so a
    point picked on the plane can be decoded.
    """

    points: np.ndarray
    axes: tuple[str, str]
    note: str
    origin: Tensor
    basis: Tensor

    def to_latent(self, points: Tensor) -> Tensor:
        """Latent codes, (N, D), of plane points, (N, 2)."""
        return self.origin + points.to(self.basis) @ self.basis


@torch.inference_mode()
def codes(model: Model, images: Tensor, labels: Tensor | None = None) -> Tensor:
    """The deterministic codes (AE bottleneck or VAE z_mean) of float images, (N, D); a
    conditional model encodes each image with its label."""
    model.eval()
    device = next(model.parameters()).device
    if labels is None:
        return batched(lambda x: model.encode(x.to(device)).cpu(), images)
    index = torch.arange(len(images))
    return batched(lambda i: model.encode(images[i].to(device), labels[i].to(device)).cpu(), index)


def plane(latent: Tensor) -> View:
    """The codes themselves when 2-D, otherwise their first two principal components."""
    dim = latent.shape[1]
    if dim == 2:
        return View(latent.numpy(), ("z[0]", "z[1]"), "", torch.zeros(2), torch.eye(2))
    if dim < 2:
        points = np.stack([latent[:, 0].numpy(), np.zeros(len(latent))], 1)
        return View(points, ("z[0]", ""), "1-D code", torch.zeros(1), torch.tensor([[1.0], [0.0]]))
    mean = latent.mean(0)
    _, s, v = torch.linalg.svd(latent - mean, full_matrices=False)
    share = (s[:2].square().sum() / s.square().sum()).item()
    note = f"PCA of the {dim}-D code ({share:.0%} of variance)"
    return View(((latent - mean) @ v[:2].T).numpy(), ("PC 1", "PC 2"), note, mean, v[:2])


@torch.inference_mode()
def decode(model: Model, z: Tensor, label: int | None = None) -> Tensor:
    """Images (probabilities in [0, 1]) decoded from latent points in one batch; a
    conditional model decodes them all as `label`."""
    model.eval()
    device = next(model.parameters()).device
    labels = conditioning(model, len(z), label)
    return torch.sigmoid(model.decode(z.to(device), labels)).cpu()


def conditioning(model: Model, n: int, label: int | None) -> Tensor | None:
    """`n` copies of `label` for a conditional model (which needs one), None otherwise."""
    if not model.capabilities.conditional:
        if label is not None:
            raise VaelabError(f"a label was given, but {model.describe()} is not conditional")
        return None
    if label is None:
        raise VaelabError(
            f"{model.describe()} is conditional: choose the class to draw (label, e.g. 3; "
            "--label 3 on the command line)"
        )
    device = next(model.parameters()).device
    return torch.full((n,), label, dtype=torch.int64, device=device)


def require_prior(model: Model, figure: str, hint: str = "") -> None:
    """Latent-plane figures only mean something where the code has a known distribution."""
    if not model.capabilities.sampling:
        raise VaelabError(
            f"a {figure} needs a generative model with a prior over its latent space; "
            f"{type(model).__name__} has a {model.latent_dim}-D code and none. "
            + (hint or "Plot a VAE run, or use 'scatter' or 'reconstructions' for this one")
        )


def check_dims(model: Model, dims: Sequence[int]) -> tuple[int, int]:
    if len(dims) != 2 or dims[0] == dims[1]:
        raise VaelabError(f"choose two different latent dimensions to vary, got {list(dims)}")
    for d in dims:
        if not 0 <= d < model.latent_dim:
            raise VaelabError(
                f"latent dimension {d} does not exist; this model has 0..{model.latent_dim - 1}"
            )
    return dims[0], dims[1]


def grid(
    latent_dim: int, size: int, limit: float, dims: tuple[int, int] = (0, 1)
) -> tuple[Tensor, np.ndarray]:
    """`size * size` latent points over [-limit, limit]^2 in `dims` (the rest 0), row-major
    from the top row (highest z[dims[1]]) down, and the axis values."""
    if size < 1 or limit <= 0:
        raise VaelabError(f"a grid needs size >= 1 and a positive range, got {size} and {limit}")
    values = np.linspace(-limit, limit, size)
    z = torch.zeros(size, size, latent_dim)
    axis = torch.tensor(values, dtype=torch.float32)
    z[:, :, dims[0]] = axis[None, :]
    z[:, :, dims[1]] = axis.flip(0)[:, None]
    return z.reshape(-1, latent_dim), values


def manifold(
    model: Model,
    size: int = 15,
    limit: float = 3.0,
    dims: Sequence[int] = (0, 1),
    label: int | None = None,
) -> tuple[Tensor, np.ndarray]:
    """Decoded images over a regular grid of the latent plane (one decoder call), and the axis."""
    require_prior(model, "manifold")
    z, values = grid(model.latent_dim, size, limit, check_dims(model, dims))
    return decode(model, z, label), values


def line(start: Tensor, end: Tensor, steps: int) -> Tensor:
    """`steps` evenly spaced points from `start` to `end`, both included."""
    if steps < 2:
        raise VaelabError(f"a walk needs at least 2 steps, got {steps}")
    t = torch.linspace(0, 1, steps)[:, None]
    return (1 - t) * start[None] + t * end[None]


def traversal(
    model: Model, base: Tensor, dims: Sequence[int], size: int, limit: float,
    label: int | None = None,
) -> tuple[Tensor, np.ndarray]:  # fmt: skip
    """Decoded images, a row per dimension of `dims` and `size` columns: `base` (a latent
    point) with that one dimension set to each value over [-limit, limit]; and the values."""
    values = np.linspace(-limit, limit, size)
    z = base.repeat(len(dims), size, 1)
    for row, dim in enumerate(dims):
        z[row, :, dim] = torch.tensor(values, dtype=z.dtype)
    return decode(model, z.reshape(-1, len(base)), label), values
