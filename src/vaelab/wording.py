"""Small pieces of English shared by messages, reports and tables (no heavy imports)."""

from collections.abc import Sequence


def count(n: int, noun: str) -> str:
    """`n` and `noun`, in the plural unless `n` is 1: "1 epoch", "30 epochs"."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def duration(seconds: float) -> str:
    """A wall time as people read it: "12.3 s" under a minute, else "2 min 05 s"."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def listing(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)
