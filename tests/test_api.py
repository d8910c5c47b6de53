import importlib.util

import vaelab


def test_every_public_name_resolves():
    for name in vaelab.__all__:
        assert getattr(vaelab, name) is not None, name


def test_no_public_name_is_shadowed_by_a_submodule():
    """`import vaelab.x` sets the attribute `x` on the package, hiding a lazy name `x`."""
    for name in vaelab.__all__:
        assert importlib.util.find_spec(f"vaelab.{name}") is None, name
