"""Random streams keyed by integers, so what is drawn does not depend on the order of the work.

A sampled estimate drawn from one generator changes when its images are batched differently,
and a training step's draws depend on every step before it. A stream keyed by what it is for
(a seed and an image's index, or a seed, an epoch and a batch) is the same however the work
is split, and a resumed run can rebuild it without saving any state.
"""

from __future__ import annotations

import torch

from vaelab.errors import SettingError

SEEDS = range(2**32)
"""The seeds that draw distinct streams: torch's CPU generator keeps 32 bits of its seed
(2**32 draws what 0 draws, -1 what 2**32 - 1 does), and the keyed streams are 32-bit too."""

MIXER = 0x9E3779B1
"""An odd multiplier (2^32 / golden ratio): keys one place apart land far apart."""


def stream_key(*parts: int) -> int:
    """A 32-bit generator seed for `parts` (torch seeds its CPU generator with 32 bits).

    Horner's rule with an odd multiplier, modulo 2^32: for fixed leading parts, different last
    parts always give different keys, so every image of one seed has its own stream.
    """
    key = 0
    for part in parts:
        key = (key * MIXER + part) % 2**32
    return key


def check_seed(seed: int, name: str = "seed") -> None:
    """Refuse a seed outside `SEEDS`, naming its setting: torch would repeat another seed's
    draws while the run's settings recorded this one, or stop with an overflow traceback."""
    if seed not in SEEDS:
        raise SettingError(
            f"{{{name}}} {seed} is out of range: choose a whole number from 0 to 2**32 - 1 "
            "(torch's generator keeps 32 bits of a seed, so others repeat those seeds' draws)",
            name,
        )


def keyed_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with `stream_key(*parts)`."""
    return torch.Generator().manual_seed(stream_key(*parts))
