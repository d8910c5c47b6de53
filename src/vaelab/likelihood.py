"""Importance-sampled estimates of -log p(x) in nats, with memory that does not grow with K.

    -log p(x) ~ log K - log sum_k p(x | z_k) p(z_k) / q(z_k | x),   z_k ~ q(z | x)

is the negative K-sample importance-weighted bound (Burda et al. 2016): never below
-log p(x) in expectation, tighter as K grows, and the single-sample negative ELBO at K = 1.
The log-likelihood literature reports it at K = 5000 on the test set.

- Memory: `batch` images at a time decode `SAMPLE_CHUNK` of their samples at once, and each
  image keeps a running log-sum of its weights, so K only changes the time.
- Noise: image i's draws come from its own generator, keyed by the seed and i
  (`vaelab.seeding`), `SAMPLE_CHUNK` at a time in order. An estimate is therefore the same
  for any batch size, and the first K draws are the same for every K: the estimates at
  K = 1, 10, ..., 5000 of `nll_curve` share their noise, and K = 1 uses the draw that the
  `elbo` score's first sample uses.

    nll = importance_nll(model, test.float(), samples=5000)     # (N,) nats per image
    estimate_nll(run, 5000)                                     # a run's test set, summarised
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vaelab import batching
from vaelab.data import Dataset, prepare, protocol
from vaelab.errors import SettingError, VaelabError
from vaelab.models import Model
from vaelab.models.losses import importance_log_weights
from vaelab.run import Run
from vaelab.seeding import check_seed, keyed_generator

SAMPLE_CHUNK = 100
"""Posterior samples decoded together per image, and drawn together from its generator."""
DEFAULT_SAMPLES = 5000


MAX_SAMPLES = 100_000
"""The most samples drawn per image: K = 5,000 (the IWAE paper's) takes minutes on the
10,000 test images, 100,000 hours for the smallest model; more would run without end."""


def check_positive_count(value: int, name: str) -> None:
    """Refuse a count below one, naming the setting `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise SettingError(f"{{{name}}} must be a whole number of at least 1, got {value!r}", name)


def check_samples(samples: int, name: str = "samples") -> None:
    """Refuse a sample count below one or above `MAX_SAMPLES`, naming the setting `name`."""
    check_positive_count(samples, name)
    if samples > MAX_SAMPLES:
        raise SettingError(
            f"{{{name}}} {samples:,} is more samples per image than {MAX_SAMPLES:,}, which "
            "already take hours; 5,000 is the IWAE paper's",
            name,
        )


def default_batch(model: Model, images: Tensor, samples: int) -> int:
    """Images per pass that make about as many decoded samples as a pass on the images'
    device takes (`vaelab.batching`), given the largest activation one of `model`'s
    decoded samples makes."""
    rows = batching.rows(images.device, largest_activation(model, images[:1]))
    return max(1, round(rows / min(samples, SAMPLE_CHUNK)))


def largest_activation(model: Model, x: Tensor) -> int:
    """The most floats one module's output holds when the one image `x` is scored at one
    code, found by forward hooks on a single pass (the MLPs': 784; a pixelcnn's: 25,088),
    and at least the image's size, for models that decode without modules."""
    sizes: list[int] = []

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        sizes.append(output.numel() if isinstance(output, Tensor) else 0)

    hooks = [module.register_forward_hook(record) for module in model.modules()]
    try:
        with torch.inference_mode():
            mean, _ = model.posterior(x)
            sizes.clear()  # the encoder runs once an image, not once a sample
            log_likelihood(model, mean[:, None], x)
    finally:
        for hook in hooks:
            hook.remove()
    return max([x[0].numel(), *sizes])  # the logits are image-sized, module or not


def require_estimable(model: Model) -> None:
    """Raise a clear error unless `model` has q(z|x) and needs no label."""
    model.require("posterior", "an importance-sampled -log p(x)")
    if model.capabilities.conditional:
        raise VaelabError(
            f"{model.describe()} is conditional: its likelihood p(x | y) needs each image's "
            "label; estimate -log p(x) of an unconditional model (e.g. vae or mlp-vae-iwae)"
        )


def posterior_chunks(
    model: Model, x: Tensor, first: int, samples: int, seed: int
) -> tuple[Tensor, Tensor, Iterator[Tensor]]:
    """q(z|x)'s mean and log-variance for the images `x` (whose first has index `first`), and
    their `samples` draws z, in chunks shaped (len(x), up to SAMPLE_CHUNK, latent)."""
    mean, log_var = model.posterior(x)
    generators = [keyed_generator(seed, first + i) for i in range(len(x))]

    def chunks() -> Iterator[Tensor]:
        std = torch.exp(0.5 * log_var)
        for start in range(0, samples, SAMPLE_CHUNK):
            eps = _noise(generators, mean.shape[1])[:, : samples - start]
            yield mean[:, None] + std[:, None] * eps.to(mean)

    return mean, log_var, chunks()


def _noise(generators: list[torch.Generator], latent: int) -> Tensor:
    """The next `SAMPLE_CHUNK` standard normal draws of each image's generator, always drawn
    whole (a shorter draw would not be a prefix of a longer one): (images, chunk, latent)."""
    return torch.stack([torch.randn(SAMPLE_CHUNK, latent, generator=g) for g in generators])


def log_likelihood(model: Model, z: Tensor, x: Tensor) -> Tensor:
    """log p(x | z) for draws z shaped (images, samples, latent): shaped (images, samples)."""
    images, samples = z.shape[:2]
    targets = x[:, None].expand(images, samples, *x.shape[1:]).flatten(0, 1)
    logits = model.pixel_logits(z.flatten(0, 1), targets)
    return -model.likelihood.nll(logits, targets).view(images, samples)


def by_batch(fn: Callable[[Tensor, int], Tensor], images: Tensor, batch: int) -> Tensor:
    """`fn(x, first)` over `images` in batches (`first`: the batch's first index), joined."""
    return torch.cat([fn(images[i : i + batch], i) for i in range(0, len(images), batch)])


def _log_weight_sums(
    model: Model, images: Tensor, ks: Sequence[int], seed: int, batch: int | None
) -> Tensor:
    """log sum_{k <= K} w_k per image, for each K of the increasing `ks`: (N, len(ks))."""
    require_estimable(model)
    model.check_input(images, None)
    for k in ks:
        check_samples(k)
    if list(ks) != sorted(set(ks)):
        raise VaelabError(f"sample counts must increase, got {list(ks)}")
    if batch is not None:
        check_positive_count(batch, "batch")
    model.eval()
    with torch.inference_mode():
        return by_batch(
            lambda x, first: _batch_log_sums(model, x, first, ks, seed),
            images,
            batch or default_batch(model, images, ks[-1]),
        )


def _batch_log_sums(model: Model, x: Tensor, first: int, ks: Sequence[int], seed: int) -> Tensor:
    """`_log_weight_sums` for one batch: a running log-sum of the weights over the chunks,
    read off at each K."""
    mean, log_var, chunks = posterior_chunks(model, x, first, ks[-1], seed)
    total = torch.full((len(x),), -math.inf, device=x.device)
    found, start = [], 0
    for z in chunks:
        log_weights = importance_log_weights(
            log_likelihood(model, z, x), z, mean[:, None], log_var[:, None]
        )
        running = torch.logaddexp(total[:, None], torch.logcumsumexp(log_weights, 1))
        end = start + z.shape[1]
        found += [running[:, k - start - 1] for k in ks if start < k <= end]
        total, start = running[:, -1], end
    return torch.stack(found, 1)


def importance_nll(
    model: Model,
    images: Tensor,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    batch: int | None = None,
) -> Tensor:
    """The K-sample estimate of -log p(x) in nats per image (K = `samples`), `batch` images
    per pass (default: `default_batch`)."""
    check_samples(samples)
    return math.log(samples) - _log_weight_sums(model, images, [samples], seed, batch)[:, 0]


def nll_curve(
    model: Model, images: Tensor, ks: Sequence[int], seed: int = 0, batch: int | None = None
) -> Tensor:
    """The estimate at each K of the increasing `ks`, per image, from one pass of max(ks)
    samples (each K uses the first K): shaped (N, len(ks))."""
    logs = torch.tensor([math.log(k) for k in ks], device=images.device)
    return logs - _log_weight_sums(model, images, ks, seed, batch)


def summary(values: Tensor) -> dict[str, float]:
    """Mean over images and its standard error (the images' spread / sqrt(N)), in float64
    on the CPU (MPS has no float64)."""
    values = values.cpu().double()
    sem = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return {"mean": values.mean().item(), "sem": sem}


def estimate_nll(
    run: Run,
    iw_samples: int = DEFAULT_SAMPLES,
    *,
    batch: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    test_images: int | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> dict[str, Any]:
    """A run's K-sample estimate of -log p(x) on its test set (its first `test_images`, if
    given), binarised as the run was trained: mean, standard error, K, images, seconds, the
    active latent units (`vaelab.latent_usage`, which Burda et al. report beside it) and the
    protocol, ready to print as JSON. `threads` sets torch's thread count first (None
    leaves it as it is)."""
    from vaelab.latent_usage import usage  # it batches with vaelab.scores, which imports this

    check_samples(iw_samples, "iw_samples")
    check_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    test = evaluation_set(run, data_dir, test_images)
    model = run.load_model(device)
    images = test.float().to(device)
    started = time.perf_counter()
    values = importance_nll(model, images, iw_samples, seed, batch)
    return {
        "estimate": ESTIMATES[run.config.data.binarize],
        **summary(values),
        "K": iw_samples,
        "images": len(test),
        "seconds": round(time.perf_counter() - started, 1),
        "seed": seed,
        "active_units": usage(model, images).active_units,
        "latent_dim": model.latent_dim,
        "protocol": protocol(run.config.data),
    }


ESTIMATES = {
    "dynamic": "-log p(x) in nats per binarised test image, K-sample importance-weighted",
    "none": "the K-sample importance-weighted -log p(x) of the grey-level test images, in "
    "nats: a score, not a likelihood to set beside binarised MNIST's (train with "
    "binarize='dynamic' for one; --binarize dynamic on the command line)",
}
"""What `estimate_nll` measured, by how the run was binarised (`vaelab.data.protocol`)."""


def evaluation_set(run: Run, data_dir: str | None = None, first: int | None = None) -> Dataset:
    """The test images of a run's classes (its `first` only, if given), binarised as the run
    was trained."""
    if first is not None:
        check_positive_count(first, "test_images")
    config = run.config.data
    if data_dir is not None:
        config.data_dir = data_dir
    config.validation = "test"
    test = prepare(config)[1]
    return test.first(min(first, len(test))) if first else test
