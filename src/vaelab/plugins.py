"""The user's own modules of models, presets, scores, recipes and strategies.

A registration exists in the process that imported the module making it. The
command line imports the modules `VAELAB_PLUGINS` names before every command
(`VAELAB_PLUGINS=mymodels vaelab train my-vae ...`). The benchmarks' workers
(`--jobs` spawned processes, Ray tasks) are new processes: before a call they
import every module recorded here, and with it each registration. Every
`register_*` function records the module whose import called it; a script run as
`__main__` cannot be imported again, so its registrations reach calls in its
own process only.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from vaelab.errors import VaelabError

Entry = TypeVar("Entry")

ENV = "VAELAB_PLUGINS"
_MODULES: set[str] = set()
_OWNERS: dict[tuple[int, str], str] = {}
"""The module that registered each (registry, name), which alone may register it again."""


def import_plugins(names: str | None = None) -> list[str]:
    """Import the modules `names` lists, separated by commas (default: `$VAELAB_PLUGINS`),
    finding them in the working directory too, as `python -m` does; their names."""
    text = os.environ.get(ENV, "") if names is None else names
    modules = [name.strip() for name in text.split(",") if name.strip()]
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    _import_each(
        modules,
        lambda module: (
            f"{ENV} names {module!r}, which cannot be imported: no {module}.py (or "
            "package) in the working directory or on PYTHONPATH; name modules as `import` takes "
            "them, separated by commas"
        ),
    )
    return modules


def add(registry: dict[str, Entry], name: str, entry: Entry, kind: type[Entry], what: str) -> None:
    """Register `entry` as `name` in `registry` (of `kind`, called `what` in messages:
    "score", "strategy", ...) and record the calling module for the workers
    (`remember_caller`).

    A name is a non-empty string, and one taken by another module is refused: a
    registration never replaces another in silence, least of all a built-in. The module that
    made it may make it again (imported anew, reloaded, a notebook cell run twice), and its
    new entry takes the old one's place. `entry` must be a `kind`, which a plain function
    is not.
    """
    if not isinstance(name, str) or not name.strip():
        raise VaelabError(f"a {what} is registered under a non-empty name, got {name!r}")
    if not isinstance(entry, kind):
        raise VaelabError(
            f"the {what} {name!r} must be registered as a {kind.__name__}(...), got "
            f"{type(entry).__name__}: wrap it as docs/extending.md shows"
        )
    module = _importing_module()
    owner = _OWNERS.get((id(registry), name))
    if name in registry and owner != module:
        raise VaelabError(
            f"a {what} named {name!r} is already registered ({describe(registry[name])}); "
            "register yours under another name"
        )
    remember_caller()
    _OWNERS[(id(registry), name)] = module
    registry[name] = entry


def describe(entry: object) -> str:
    """An entry's one-line summary, for a message that names it."""
    return str(getattr(entry, "summary", "")) or type(entry).__name__


def remember_caller() -> None:
    """Record the module whose import made the registration now under way.

    That is the module running its top-level code nearest the call, not the function's own
    module: a helper in `helpers.py` that registers for `mymodels.py` must have `mymodels`
    imported in a worker, which importing `helpers` would not do. vaelab's own registrations
    are left out: each is made by the module that holds its registry, which a worker imports
    to look the name up. A registration made outside any import (inside a function called
    later) has no module that would make it again, and is not recorded."""
    module = _importing_module()
    if module != "__main__" and not module.startswith("vaelab."):
        _MODULES.add(module)


def _importing_module() -> str:
    """The module running its top-level code nearest this call (`__main__` if none is)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    return "__main__" if frame is None else frame.f_globals.get("__name__", "__main__")


def registered_modules() -> list[str]:
    """The modules to import in a worker before it runs a call."""
    return sorted(_MODULES)


def import_registered(modules: list[str]) -> None:
    """Import, in a worker, the `modules` that `registered_modules` named where the calls were
    sent from."""
    _import_each(
        modules,
        lambda module: (
            f"a worker cannot import {module}, whose registrations the calls need: "
            "put its folder on PYTHONPATH where the workers run (on every node of a Ray cluster)"
        ),
    )


def _import_each(modules: list[str], missing: Callable[[str], str]) -> None:
    """Import `modules`; one that is not there is a `VaelabError` saying `missing(module)`
    (an import that fails inside the module is the module's own error, and stays one)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            raise VaelabError(missing(module)) from None
