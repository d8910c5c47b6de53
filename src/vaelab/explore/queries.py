"""Query strings read strictly: every value present once, finite and within bounds.

Whatever a client sends, the server answers with a 400 and one sentence
rather than decoding 1e308 into a black square or raising a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_STEPS = 64


class QueryError(ValueError):
    """A bad query value; the message says which and what is expected."""


@dataclass(frozen=True)
class End:
    """One end of a walk: a test image (by index) or a point of the plane."""

    test_image: int | None = None
    point: tuple[float, float] | None = None


def fields(query: str) -> dict[str, str]:
    """Each field's single value; a repeated field is an error."""
    try:
        parsed = parse_qs(query, strict_parsing=bool(query), max_num_fields=16)
    except ValueError:
        raise QueryError("the query string is malformed; write e.g. ?x=0.5&y=-1") from None
    repeated = [name for name, values in parsed.items() if len(values) > 1]
    if repeated:
        raise QueryError(f"give {repeated[0]} once")
    return {name: values[0] for name, values in parsed.items()}


def number(
    text: str | None,
    name: str,
    reach: float,
    not_number: str = "{name} must be a number, e.g. {name}=0.5",
    too_far: str = "{name}={text} is off the explorable plane; keep |{name}| <= {reach:g}",
) -> float:
    """A finite number within [-reach, reach]; the messages say what else to send (their
    fields: `name`, `text`, `reach`)."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QueryError(not_number.format(name=name, text=text)) from None
    if not math.isfinite(value):
        raise QueryError(f"{name} must be finite, got {text}")
    if abs(value) > reach:
        raise QueryError(too_far.format(name=name, text=text, reach=reach))
    return value


def whole(text: str | None, name: str, low: int, high: int) -> int:
    """A whole number in [low, high]."""
    try:
        value = int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise QueryError(f"{name}={value} is out of range; choose {low} to {high}")
    return value


def label(query: str, classes: int | None) -> int | None:
    """The class a conditional model draws (`label=3`); None where the model takes none."""
    given = fields(query).get("label")
    if classes is None:
        if given is not None:
            raise QueryError("this model is not conditional: it takes no label")
        return None
    return 0 if given is None else whole(given, "label", 0, classes - 1)


def plane_point(query: str, reach: float) -> tuple[float, float]:
    """(x, y) from `x=0.5&y=-1`."""
    given = fields(query)
    if "x" not in given or "y" not in given:
        raise QueryError("give the plane point as two numbers, e.g. /decode?x=0.5&y=-1")
    return number(given["x"], "x", reach), number(given["y"], "y", reach)


def latent_code(query: str, dim: int, reach: float) -> list[float]:
    """A whole latent code from `z=0.5,-1,...`: `dim` numbers, each finite and within
    [-reach, reach], so that a slider's code decodes and anything else gets one sentence."""
    text = fields(query).get("z")
    send = f"send z as {dim} numbers separated by commas, e.g. z={','.join(['0'] * dim)}"
    if text is None:
        raise QueryError(f"give the latent code: {send}")
    parts = text.split(",")
    if len(parts) != dim:
        raise QueryError(f"z has {len(parts)} numbers, but this model's code has {dim}: {send}")
    return [code_value(part, index, reach) for index, part in enumerate(parts)]


def code_value(text: str, index: int, reach: float) -> float:
    """One value of a latent code: a finite number within [-reach, reach]."""
    return number(
        text,
        f"z[{index}]",
        reach,
        not_number="{name} is {text!r}, not a number; send z as numbers only",
        too_far="{name}={text} is out of reach; keep every |z[i]| <= {reach:g}",
    )


def code_start(query: str, reach: float, images: int) -> End:
    """Where the sliders start: `at=test:12` (a test image's code) or `at=0.5,-1` (a plane
    point's), written as a walk's ends are."""
    return walk_end(fields(query).get("at"), "at", reach, images)


def walk_end(text: str | None, name: str, reach: float, images: int) -> End:
    """`test:12` (test image 12) or `0.5,-1` (a plane point)."""
    if text is None:
        raise QueryError(f"give {name} as a test image (test:12) or a plane point (0.5,-1)")
    if text.startswith("test:"):
        return End(test_image=whole(text[5:], f"{name}'s test image", 0, images - 1))
    parts = text.split(",")
    if len(parts) != 2:
        raise QueryError(f"{name} must be test:INDEX or X,Y, got {text!r}")
    x, y = (number(part, f"{name}'s {axis}", reach) for part, axis in zip(parts, "xy", strict=True))
    return End(point=(x, y))


def walk(query: str, reach: float, images: int) -> tuple[End, End, int]:
    """The two ends and the number of steps (8 unless `steps` says) of a walk."""
    given = fields(query)
    start = walk_end(given.get("from"), "from", reach, images)
    end = walk_end(given.get("to"), "to", reach, images)
    if (start.test_image is None) != (end.test_image is None):
        raise QueryError("walk between two test images or two plane points, not one of each")
    return start, end, whole(given.get("steps", "8"), "steps", 2, MAX_STEPS)
