"""The modules whose import registers the user's additions, so that workers make them too.

A model, preset, score, recipe or strategy registered by the user's own module
exists in the process that imported it. The benchmarks' workers (`--jobs`
spawned processes, Ray tasks) are new processes: before a call they import
every module recorded here, and with it each registration. Every `register_*`
function records the module that called it; a script run as `__main__` cannot
be imported again, so its registrations reach calls in its own process only.
"""

from __future__ import annotations

import importlib
import sys

_MODULES: set[str] = set()


def remember_caller() -> None:
    """Record the module of the code that called the `register_*` function calling this.

    vaelab's own registrations are left out: each is made by the module that holds its
    registry, which a worker imports to look the name up."""
    module = sys._getframe(2).f_globals.get("__name__", "__main__")
    if module != "__main__" and not module.startswith("vaelab."):
        _MODULES.add(module)


def registered_modules() -> list[str]:
    """The modules to import in a worker before it runs a call."""
    return sorted(_MODULES)


def import_registered(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)
