"""Per-image anomaly scores: higher means more anomalous.

Every score is a function `(model, images) -> (N,)` over float images in
[0, 1], computed in batches under `torch.inference_mode`. Reconstruction
scores decode the deterministic code (the AE's bottleneck, the VAE's
posterior mean), so they are the same on every call.

The VAE's probabilistic scores are in nats, per image:

- `elbo`: the negative ELBO, `E_q[-log p(x|z)] + KL(q(z|x) || p(z))`, the
  reconstruction term averaged over K posterior samples, the KL exact;
- `iwae`: the negative importance-weighted bound with K samples,
  `-log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)`; it is never above the
  expected negative ELBO and tends to `-log p(x)` as K grows (Burda et al.
  2016), so it is the tighter estimate of the image's negative log-likelihood;
- `latent`: `-log N(z_mean; 0, I)`, how unlikely the posterior mean is
  under the prior.

`recon-mse-edge` divides the squared error by the image's edge energy, the sum of squared
differences between neighbouring pixels. A model's reconstructions are blurred, so even a
normal image's error gathers along its strokes: the raw error grows with how much an image
holds (a busy 8 against a thin 1) as well as with how unlike the normal class it is. The
ratio is the error per unit of edge, a score made relative to the image's complexity as
Serra et al. (ICLR 2020) make likelihoods relative to a compressor's estimate of it.

`recon-mse-edge-latent` multiplies that ratio by the posterior mean's squared distance from
the prior's centre, `|z_mean|^2`, to the power 0.3: a sum of the two scores' logarithms, so
an image is anomalous when it is poorly restored for its complexity, or encoded where the
normal class's codes do not lie, or both. The error catches shapes the decoder cannot
draw; the code's distance catches those it draws too well (a plain pullover restored by a
coat model), which is where Fashion-MNIST's close classes part.

Sampled scores draw each image's noise from its own generator, keyed by `seed` and the
image's index (`vaelab.likelihood`), so a score is reproducible for a seed whatever the
batch size, and `iwae` is the likelihood estimate itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vaelab import batching, plugins
from vaelab.errors import SettingError, VaelabError
from vaelab.likelihood import (
    by_batch,
    check_samples,
    default_batch,
    importance_nll,
    log_likelihood,
    posterior_chunks,
)
from vaelab.models import Model
from vaelab.models.losses import LOG_2PI, gaussian_kl

SAMPLES = 10
EDGE_FLOOR = 1e-3
"""The least edge energy a `recon-mse-edge` score divides by, so a blank image scores its
error times 1,000 instead of infinity."""
LATENT_POWER = 0.3
"""The weight of the code's distance in `recon-mse-edge-latent`, against 1 for the
edge-relative error: chosen among 0.1, 0.2, 0.3, 0.5, 0.75 and 1 on the validation split
of `benchmarks/oneclass_validation.py` (Fashion-MNIST)."""


def batched(
    fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int | None = None
) -> Tensor:
    """`fn` applied to `images` in batches (default: `vaelab.batching`'s size for their
    device), results concatenated along the first axis."""
    size = batch_size or batching.rows(images.device)
    return torch.cat([fn(images[i : i + size]) for i in range(0, len(images), size)])


@torch.inference_mode()
def reconstruct(model: Model, images: Tensor, labels: Tensor | None = None) -> Tensor:
    """Reconstruction logits from the deterministic code (a conditional model is given
    each image's label)."""
    model.eval()
    if labels is None:
        return batched(lambda x: model.decode(model.encode(x)), images)
    pairs = torch.arange(len(images))
    return batched(lambda i: model.decode(model.encode(images[i], labels[i]), labels[i]), pairs)


def error_map(logits: Tensor, images: Tensor, kind: str) -> Tensor:
    """Per-pixel error (N, H, W) of reconstruction logits against the images, summed over
    channels."""
    if kind == "bce":
        error = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
    elif kind == "mse":
        error = (torch.sigmoid(logits) - images).square()
    else:
        raise VaelabError(f"unknown error map {kind!r}; choose bce or mse")
    return error.sum(1)


def pixel_errors(
    model: Model, images: Tensor, kind: str = "bce", labels: Tensor | None = None
) -> Tensor:
    """Per-pixel reconstruction error (N, H, W), summed over channels: the anomaly map."""
    return error_map(reconstruct(model, images, labels), images, kind)


@torch.inference_mode()
def over_batches(
    per_batch: Callable[[Model, Tensor], Tensor], model: Model, images: Tensor
) -> Tensor:
    """A deterministic score of every image, from its function of one batch."""
    model.eval()
    return batched(lambda x: per_batch(model, x), images)


def recon_bce_of_batch(model: Model, x: Tensor) -> Tensor:
    return error_map(model.decode(model.encode(x)), x, "bce").flatten(1).sum(1)


def recon_mse_of_batch(model: Model, x: Tensor) -> Tensor:
    return error_map(model.decode(model.encode(x)), x, "mse").flatten(1).sum(1)


def latent_of_batch(model: Model, x: Tensor) -> Tensor:
    return 0.5 * (LOG_2PI + model.encode(x).square()).sum(1)


def recon_bce(model: Model, images: Tensor) -> Tensor:
    """-log p(x | code): binary cross-entropy summed over pixels."""
    return over_batches(recon_bce_of_batch, model, images)


def recon_mse(model: Model, images: Tensor) -> Tensor:
    """Squared error between image and reconstruction, summed over pixels."""
    return over_batches(recon_mse_of_batch, model, images)


def edge_energy(x: Tensor) -> Tensor:
    """Sum of squared differences between neighbouring pixels, over rows, columns and
    channels: how much edge an image holds."""
    rows = (x[..., 1:, :] - x[..., :-1, :]).square().flatten(1).sum(1)
    return rows + (x[..., :, 1:] - x[..., :, :-1]).square().flatten(1).sum(1)


def per_unit_of_edge(error: Tensor, x: Tensor) -> Tensor:
    """`error` divided by the edge energy of the images `x` (at least `EDGE_FLOOR`)."""
    return error / edge_energy(x).clamp_min(EDGE_FLOOR)


def recon_mse_edge_of_batch(model: Model, x: Tensor) -> Tensor:
    return per_unit_of_edge(recon_mse_of_batch(model, x), x)


def recon_mse_edge(model: Model, images: Tensor) -> Tensor:
    """Squared reconstruction error relative to the image's edge energy."""
    return over_batches(recon_mse_edge_of_batch, model, images)


def recon_mse_edge_latent_of_batch(model: Model, x: Tensor) -> Tensor:
    code = model.encode(x)
    error = error_map(model.decode(code), x, "mse").flatten(1).sum(1)
    return per_unit_of_edge(error, x) * code.square().sum(1).pow(LATENT_POWER)


def recon_mse_edge_latent(model: Model, images: Tensor) -> Tensor:
    """The edge-relative squared error times the code's squared distance from the prior's
    centre to the power `LATENT_POWER`."""
    require_posterior(model, "recon-mse-edge-latent")
    return over_batches(recon_mse_edge_latent_of_batch, model, images)


def require_posterior(model: Model, name: str) -> None:
    """Raise a clear error if `model` has no q(z|x) for the score `name`."""
    if not model.capabilities.posterior:
        raise VaelabError(
            f"score {name!r} needs a model with a posterior q(z|x) (a VAE); "
            f"{model.describe()} has none: use one that needs none ("
            f"{', '.join(n for n, s in SCORES.items() if not s.needs_posterior)})"
        )


def require_unconditional(model: Model) -> None:
    """An anomaly score sees only the image: a model that needs its label cannot give one."""
    if model.capabilities.conditional:
        raise VaelabError(
            f"{model.describe()} is conditional: it needs each image's label, which an anomaly "
            "score does not have; score an unconditional model (e.g. vae or resnet-vae)"
        )


@torch.inference_mode()
def elbo(model: Model, images: Tensor, samples: int = SAMPLES, seed: int = 0) -> Tensor:
    """Negative ELBO in nats: reconstruction NLL averaged over `samples` draws of q(z|x),
    plus the exact KL to the prior (the VAE's training loss, with less noise)."""
    require_posterior(model, "elbo")
    check_samples(samples)
    model.eval()

    def negative_elbo(x: Tensor, first: int) -> Tensor:
        mean, log_var, chunks = posterior_chunks(model, x, first, samples, seed)
        recon = sum(-log_likelihood(model, z, x).sum(1) for z in chunks)
        return recon / samples + gaussian_kl(mean, log_var)

    return by_batch(negative_elbo, images, default_batch(model, images, samples))


def iwae(model: Model, images: Tensor, samples: int = SAMPLES, seed: int = 0) -> Tensor:
    """Negative importance-weighted bound in nats with `samples` draws (K): an estimate of
    -log p(x) that tightens as K grows; K=1 is a single-sample negative ELBO."""
    require_posterior(model, "iwae")
    return importance_nll(model, images, samples, seed)


def latent(model: Model, images: Tensor) -> Tensor:
    """-log N(z_mean; 0, I) in nats: how far the posterior mean lies from the prior's bulk."""
    require_posterior(model, "latent")
    return over_batches(latent_of_batch, model, images)


@dataclass(frozen=True)
class Score:
    """A registered score: its function and what it needs.

    `per_batch` is the score of one batch, `(model, x) -> (N,)`, as plain tensor
    operations (no batching, no inference mode), for a score that is one fixed
    function of the image: `vaelab.export` traces it into an ONNX graph. Scores
    without it (the sampled ones) cannot be exported.
    """

    function: Callable[..., Tensor]
    summary: str
    needs_posterior: bool = False
    sampled: bool = False
    per_batch: Callable[[Model, Tensor], Tensor] | None = None


SCORES: dict[str, Score] = {
    "recon-bce": Score(
        recon_bce, "BCE between the image and its reconstruction", per_batch=recon_bce_of_batch
    ),
    "recon-mse": Score(
        recon_mse,
        "squared error between the image and its reconstruction",
        per_batch=recon_mse_of_batch,
    ),
    "recon-mse-edge": Score(
        recon_mse_edge,
        "squared reconstruction error relative to the image's edge energy",
        per_batch=recon_mse_edge_of_batch,
    ),
    "recon-mse-edge-latent": Score(
        recon_mse_edge_latent,
        "the edge-relative error times the code's distance from the prior's centre^0.3",
        needs_posterior=True,
        per_batch=recon_mse_edge_latent_of_batch,
    ),
    "elbo": Score(elbo, "negative ELBO, K posterior samples", needs_posterior=True, sampled=True),
    "iwae": Score(iwae, "negative K-sample importance-weighted bound", True, sampled=True),
    "latent": Score(
        latent,
        "-log prior density of the posterior mean",
        needs_posterior=True,
        per_batch=latent_of_batch,
    ),
}


def register_score(name: str, score: Score) -> None:
    """Make `score` available by `name` to the anomaly report, detector and benchmark (and
    to the benchmark's workers: `vaelab.plugins`)."""
    if isinstance(score, Score) and not callable(score.function):
        raise VaelabError(f"the score {name!r} needs a function (model, images) -> (N,)")
    plugins.add(SCORES, name, score, Score, "score")


def check_score(name: str) -> None:
    """Refuse a score name that is not registered, before any data is read."""
    if name not in SCORES:
        raise SettingError(
            f"unknown {{score}} {name!r}; choose one of {', '.join(SCORES)}", "score"
        )


def check_samples_drawn(name: str, samples: int | None) -> None:
    """Refuse `samples` given for a score that draws no posterior samples: it would change
    nothing, and silently."""
    if samples is not None and name in SCORES and not SCORES[name].sampled:
        sampled = ", ".join(key for key, entry in SCORES.items() if entry.sampled)
        raise SettingError(
            f"{{samples}} {samples} is for the scores that draw posterior samples ({sampled}); "
            f"{{score}} {name} draws none: leave {{samples}} out",
            "samples",
            "score",
        )


def score(model: Model, images: Tensor, name: str = "recon-bce", **options: object) -> Tensor:
    """The per-image score `name` (see `SCORES`); higher = more anomalous. `options` are the
    sampled scores' `samples` and `seed`."""
    check_score(name)
    sampling = {"samples", "seed"}
    if unknown := sorted(set(options) - (sampling if SCORES[name].sampled else set())):
        why = " (it draws no posterior samples)" if set(unknown) <= sampling else ""
        raise SettingError(
            f"score {name!r} takes no option {', '.join('{' + u + '}' for u in unknown)}{why}",
            *unknown,
        )
    require_unconditional(model)
    if SCORES[name].needs_posterior:  # a registered score declares it; a built-in checks too
        require_posterior(model, name)
    model.check_input(images, None)
    return SCORES[name].function(model, images, **options)
