"""The plain PyTorch training loop, written as a user would, beside the textbook models.

The models are `vaelab.models.textbook` (the article's layers in `nn.Sequential`s);
here are the loop and the optimiser: the training set as one float tensor sliced
per batch, Adam with the same settings as vaelab's default.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaelab.models.textbook import REFERENCES, copy_weights

__all__ = ["REFERENCES", "copy_weights", "plain_adam", "train_epoch"]


def plain_adam(model: nn.Module) -> torch.optim.Optimizer:
    """Adam with vaelab's default settings (Keras' eps), constructed as a user would."""
    return torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | None = None,
) -> float:
    """One epoch of the textbook loop; returns the mean batch loss. With a `device`, each
    batch is copied there from wherever `images` are (the data left on the host)."""
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    total = 0.0
    for start in range(0, len(images), batch_size):
        x = images[order[start : start + batch_size]]
        if device is not None:
            x = x.to(device, non_blocking=True)
        loss = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / -(-len(images) // batch_size)
