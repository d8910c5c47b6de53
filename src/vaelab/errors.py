"""Errors that vaelab reports to people, not as tracebacks.

Every error a user can cause (bad files, missing data, bad options, a run
that diverged) is a `VaelabError`; the CLI prints its message on one line
and exits with a non-zero status. Messages say what went wrong, where, and
what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable


class VaelabError(Exception):
    """Base class for every error vaelab reports to the user."""


class DatasetError(VaelabError):
    """A dataset could not be found, read, verified or selected."""


class NoTestSplitError(DatasetError):
    """A folder or `.npz` dataset has no test split; training can hold out a fraction
    instead, a check on test images cannot."""


class RunError(VaelabError):
    """A run folder is missing, incomplete or inconsistent."""


class TrainingError(VaelabError):
    """Training cannot go on (for example the loss became NaN)."""


class Interrupted(VaelabError):
    """Training was stopped by Ctrl-C after saving a resumable checkpoint."""


class SettingError(VaelabError):
    """A setting that cannot work with the others or with the data, found before any work.

    The message is a template in which `{name}` marks a setting: Python callers
    read the parameter (`replay_size`), and the CLI shows the flag they typed
    (`--replay-size`) with `as_flags`. Other text, braces included, is kept as is.
    """

    def __init__(self, template: str, *settings: str) -> None:
        self.template = template
        self.settings = settings
        super().__init__(self._spell(lambda name: name))

    def renamed(self, flags: dict[str, str]) -> SettingError:
        """This error with the settings of `flags` named as the command line's options that
        read differently (`limit` as `range`, shown `--range`)."""
        template = self.template
        for name, flag in flags.items():
            template = template.replace("{" + name + "}", "{" + flag + "}")
        return SettingError(template, *(flags.get(name, name) for name in self.settings))

    def as_flags(self) -> str:
        return self._spell(lambda name: "--" + name.replace("_", "-"))

    def _spell(self, spelling: Callable[[str], str]) -> str:
        text = self.template
        for name in self.settings:
            text = text.replace("{" + name + "}", spelling(name))
        return text


class VaelabWarning(UserWarning):
    """Something worth telling the user that does not stop the work; the CLI prints its
    message on one line."""
