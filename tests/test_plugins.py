"""The modules that workers import first, so that the user's registrations exist there too."""

import subprocess
import sys

from vaelab.plugins import registered_modules


def test_the_users_module_is_recorded_and_vaelabs_own_are_not(user_module):
    assert "user_models" in registered_modules()
    assert not [m for m in registered_modules() if m.startswith("vaelab")]


def test_a_script_run_as_main_is_not_recorded():
    """A worker could not import `__main__` again: it would run the user's script."""
    script = (
        "from vaelab.scores import SCORES, register_score\n"
        "from vaelab.plugins import registered_modules\n"
        "register_score('mine', SCORES['recon-mse'])\n"
        "print(registered_modules(), 'mine' in SCORES)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == ["[]", "True"], out.stderr
