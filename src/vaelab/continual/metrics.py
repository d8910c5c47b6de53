"""What a model still knows after a stage, and how much of it was lost by the end.

After every stage the model is measured on the test images of *every* digit
(mean negative ELBO and its reconstruction part: one row of the stages x
digits matrix) and on what it now generates: samples from its prior, named
by the digit classifier, give each digit's share of its dreams. Dreams are
read from the saved stage models when results are collected, so training
never waits for the classifier.

Forgetting of a digit = its loss at the end minus its loss just after the
stage that learned it (positive: forgotten). The average runs over every
digit but the last, which has no later stage to forget in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vaelab.classifier import DigitClassifier
from vaelab.data import Dataset
from vaelab.diagnostics import is_untrained
from vaelab.models import Model
from vaelab.train import evaluate


def evaluate_stage(
    model: Model, test: Dataset, digits: Sequence[int], seed: int
) -> dict[str, dict[str, float]]:
    """Per digit (keys are digit strings): mean test `loss` (the training objective: the
    negative ELBO when the KL weight is 1) and `recon`."""
    model.cpu().eval()
    row: dict[str, dict[str, float]] = {"loss": {}, "recon": {}}
    for digit in digits:
        images = test.with_classes([digit])
        scores = evaluate(model, images.float(), seed=seed, labels=images.labels)
        row["loss"][str(digit)] = scores["loss"]
        row["recon"][str(digit)] = scores["recon"]
    return row


@torch.inference_mode()
def dream_shares(
    model: Model, classifier: DigitClassifier, digits: Sequence[int], n: int, seed: int
) -> dict[str, float]:
    """Share of each digit among `n` images the model decodes from its prior (a conditional
    model is asked for each of `digits` in turn)."""
    generator = torch.Generator().manual_seed(seed)
    asked = torch.tensor(list(digits)).repeat(-(-n // len(digits)))[:n]
    wanted = asked if model.capabilities.conditional else None
    labels = classifier.predict(model.sample(n, generator, wanted).cpu())
    counts = torch.bincount(labels, minlength=10)
    return {str(d): counts[d].item() / n for d in digits}


def forgetting(
    stages: Sequence[dict[str, Any]], order: Sequence[int], key: str = "loss"
) -> dict[str, float]:
    """Per digit: `key` at the end minus `key` just after the digit was learned."""
    final = stages[-1][key]
    return {str(d): final[str(d)] - stages[i][key][str(d)] for i, d in enumerate(order)}


def average_forgetting(per_digit: dict[str, float], order: Sequence[int]) -> float:
    """Mean forgetting over every digit but the last learned."""
    earlier = [per_digit[str(d)] for d in order[:-1]]
    return sum(earlier) / len(earlier)


def untrained_stages(stages: Sequence[dict[str, Any]]) -> list[dict[str, int]]:
    """The stages whose model reconstructs every test image of the digits seen so far nearly
    alike (`vaelab.diagnostics`). Stages saved before the check, and pixel decoders, record
    no spread and are not listed."""
    return [
        {"stage": s["stage"], "digit": s["digit"]}
        for s in stages
        if is_untrained(s.get("reconstruction_spread"))
    ]


def summarize(stages: Sequence[dict[str, Any]], order: Sequence[int]) -> dict[str, Any]:
    """A strategy's forgetting numbers, the stages that did not learn, and its per-stage
    records."""
    loss, recon = forgetting(stages, order, "loss"), forgetting(stages, order, "recon")
    share = forgetting(stages, order, "dream_share")
    return {
        "avg_forgetting": average_forgetting(loss, order),
        "avg_recon_forgetting": average_forgetting(recon, order),
        "avg_dream_share_change": average_forgetting(share, order),
        "forgetting": loss,
        "recon_forgetting": recon,
        "dream_share_change": share,
        "final_loss": dict(stages[-1]["loss"]),
        "final_dream_share": dict(stages[-1]["dream_share"]),
        "untrained_stages": untrained_stages(stages),
        "stages": list(stages),
    }
