"""A VQ-VAE (van den Oord, Vinyals and Kavukcuoglu 2017): an autoencoder whose code is a
grid of vectors, each replaced by the nearest of K learned codebook vectors.

    encoder -> 1x1 conv -> z_e (D x H x W) -> nearest codebook vectors e -> decoder -> logits

It is the `AE` with a quantiser between its encoder and decoder, so it is a subclass, not
an objective: the networks, the likelihood and the reconstruction term are the AE's, and
every score and figure that reads an AE's `encode`/`decode` reads this one's (the
quantised vectors, flattened; `decode` quantises whatever code it is given). The 1x1 conv
lets the code vectors take either sign, as every encoder family ends with an activation.

The codebook is a fixed random basis times one learned D x D matrix, after SimVQ (Zhu et
al., *Addressing Representation Collapse in Vector Quantized Models with One Linear
Layer*, 2024), not a free table of vectors: in a free table a vector no code picks gets no
gradient and stays dead, while here every codebook term moves the matrix, so every vector
moves with the ones in use. Being a parameter, the matrix is trained, saved, resumed,
all-reduced across processes and compiled like every other weight, with nothing to update
outside the optimiser's step (as the paper's moving-average variant would need). Per image,

- `recon`: the likelihood's mean pixel NLL, as the AE's;
- `codebook`: mean ||sg[z_e] - e||^2 over the code, which moves the codebook;
- `commitment`: `COMMITMENT` * mean ||z_e - sg[e]||^2, which keeps the encoder near it.

The three are the `Output`'s per-image `losses`, which the training loop sums into the
loss and records part by part (`train_codebook`, `val_commitment`), as it does a VAE's
`kl`: neither the loop nor the objectives needed a change.

The decoder sees `z_e + sg[e - z_e]`: the value e, with the gradient passed straight
through to the encoder. A VQ-VAE has no prior to sample from (the paper fits an
autoregressive one afterwards, a separate model) and no Gaussian posterior, so it declares
neither capability and the ELBO, likelihood, sampling and latent-prior scores and figures
refuse it as they refuse the `ae`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from vaelab.config import ModelConfig
from vaelab.errors import SettingError
from vaelab.models.ae import AE
from vaelab.models.base import Output
from vaelab.models.likelihoods import likelihood
from vaelab.models.losses import at_least_float32

COMMITMENT = 0.25
"""beta, the weight of the commitment term: the paper's value (robust from 0.1 to 2, it
reports)."""


CODEBOOK_INIT = 1.0
"""The basis starts uniform in [-1, 1]^D, across the encoder's first codes (standard
deviation about 0.6), and the matrix at the identity, so the first codebook is that basis.
Not the common [-1/K, 1/K]^D at the origin: there the few vectors at its edge are nearest
to every code. On the bundled sample (10 epochs, seeds 0 to 2, measured on a tenth of the
training images held out) a free codebook with the wide start used 49 to 61 of 512 vectors
and reached a held-out reconstruction loss of 0.162 to 0.167 mean pixel BCE; the narrow one
used 20 to 28 and reached 0.176 to 0.187."""


class VQVAE(AE):
    loss_unit = "mean per pixel or code element"

    def __init__(self, config: ModelConfig, shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        config = config.resolved()
        refuse_settings(config)
        super().__init__(config, shape)
        if len(self.code_shape) != 3:
            raise SettingError(
                f"a VQ-VAE quantises a grid of vectors, but the {config.encoder.family} "
                "{encoder} gives one vector; use the conv or resnet family",
                "encoder",
            )
        size, width = int(config.codebook_size), self.code_shape[0]
        self.pre_quantise = nn.Conv2d(width, width, 1)
        basis = torch.empty(size, width).uniform_(-CODEBOOK_INIT, CODEBOOK_INIT)
        self.register_buffer("basis", basis)
        self.projection = nn.Parameter(torch.eye(width))
        self.register_load_state_dict_pre_hook(read_a_free_codebook)

    @property
    def codebook(self) -> Tensor:
        """The K codebook vectors, (K, D): the basis times the learned matrix, in float32
        under autocast too (bfloat16 products picked another vector than the nearest at
        0.75% of a trained model's places)."""
        with torch.autocast(self.basis.device.type, enabled=False):
            return self.basis @ self.projection

    def nearest(self, z_e: Tensor) -> Tensor:
        """The index of the nearest codebook vector at each place of z_e (N, D, H, W):
        argmin ||e||^2 - 2 z.e, the squared distance less the ||z||^2 all codes share, in
        float32 as the codebook is."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        codebook = self.codebook
        with torch.autocast(z_e.device.type, enabled=False):
            distances = codebook.square().sum(1) - 2 * flat @ codebook.T
        # shape[0], not len(z_e), which an ONNX export would fix at the example's batch size
        return distances.argmin(1).view(z_e.shape[0], *z_e.shape[2:])

    def for_export(self) -> VQVAE:
        """A copy whose basis is the codebook and matrix the identity, so that a graph holds
        PyTorch's own codebook vectors (times the identity: exact). Multiplied out again by
        onnxruntime, they differ in the last bit and flip the nearest vector where two are
        nearly as near."""
        folded = copy.deepcopy(self)
        with torch.no_grad():
            folded.basis.copy_(self.codebook)
            folded.projection.copy_(torch.eye(len(self.projection)))
        return folded

    @torch.inference_mode()
    def code_counts(self, images: Tensor, batch_size: int = 1000) -> Tensor:
        """How often the codes of `images` pick each codebook vector, (K,): a vector never
        picked is dead, and a codebook most of whose vectors are dead is too large."""
        self.eval()
        counts = torch.zeros(len(self.basis), dtype=torch.long, device=images.device)
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            counts += (
                self.nearest(self.code_vectors(batch)).flatten().bincount(minlength=len(counts))
            )
        return counts

    def quantise(self, z_e: Tensor) -> Tensor:
        """z_e with each vector replaced by its nearest codebook vector, (N, D, H, W)."""
        return self.codebook[self.nearest(z_e)].permute(0, 3, 1, 2)

    def code_vectors(self, x: Tensor) -> Tensor:
        """z_e: the encoder's grid of vectors before quantisation."""
        return at_least_float32(self.pre_quantise(self.encoder(x)))

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.quantise(self.code_vectors(x)).flatten(1)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder's logits for the nearest code it can be given: each vector of `z`
        replaced by its nearest codebook vector (an `encode`d code is kept as it is), so a
        point between codes, on the explorer's plane or a walk, decodes as the model would
        draw it, in steps, not as a blend its decoder never saw."""
        grid = at_least_float32(z).view(-1, *self.code_shape)
        return super().decode(self.quantise(grid).flatten(1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        self.check_input(x, y)
        z_e = self.code_vectors(x)
        e = self.quantise(z_e)
        code = z_e + (e - z_e).detach()  # e's value, the identity's gradient
        logits = self.decoder(code)
        losses = {
            "recon": self.likelihood.nll(logits, x) / x[0].numel(),
            "codebook": (z_e.detach() - e).square().flatten(1).mean(1),
            "commitment": COMMITMENT * (z_e - e.detach()).square().flatten(1).mean(1),
        }
        return Output(logits=logits, latent=code.flatten(1), losses=losses)


def perplexity(counts: Tensor) -> float:
    """exp(entropy) of the codes' distribution over the codebook: the number of vectors that,
    picked equally often, would carry as much; 300 used but a few most of the time read as
    fewer."""
    p = counts[counts > 0].double() / counts.sum()
    return float(torch.exp(-(p * p.log()).sum()))


def read_a_free_codebook(
    module: nn.Module, state: dict[str, Tensor], prefix: str, *_: object
) -> None:
    """Weights saved by a VQ-VAE with a free codebook table (`codebook`, before the
    projected one) load exactly: that table as the basis, the matrix the identity."""
    table = state.pop(prefix + "codebook", None)
    if table is not None and prefix + "basis" not in state:
        state[prefix + "basis"] = table
        state[prefix + "projection"] = torch.eye(table.shape[1], dtype=table.dtype)


def refuse_settings(config: ModelConfig) -> None:
    """Refuse, naming the setting, what a VQ-VAE cannot be: a codebook of fewer than two
    vectors carries nothing, and its code is neither a label's nor decoded pixel by pixel."""
    assert config.likelihood and config.objective
    if config.codebook_size is None or config.codebook_size < 2:
        raise SettingError(
            f"a VQ-VAE's {{codebook_size}} must be at least 2, got {config.codebook_size}",
            "codebook_size",
        )
    if config.conditional:
        raise SettingError("a VQ-VAE is not {conditional}; leave it out", "conditional")
    if config.objective.name != "reconstruction":
        raise SettingError(
            "a VQ-VAE trains on the reconstruction {objective} plus its codebook terms, got "
            f"{config.objective.name!r}",
            "objective",
        )
    if likelihood(config.likelihood).autoregressive:
        raise SettingError(
            f"the {config.likelihood.name} {{likelihood}} is autoregressive, for a VAE's "
            "decoder; give a VQ-VAE the bernoulli or gaussian likelihood",
            "likelihood",
        )
