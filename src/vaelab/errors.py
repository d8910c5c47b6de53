"""Errors that vaelab reports to people, not as tracebacks.

Every error a user can cause (bad files, missing data, bad options, a run
that diverged) is a `VaelabError`; the CLI prints its message on one line
and exits with a non-zero status. Messages say what went wrong, where, and
what to do about it.
"""


class VaelabError(Exception):
    """Base class for every error vaelab reports to the user."""


class DatasetError(VaelabError):
    """A dataset could not be found, read, verified or selected."""


class RunError(VaelabError):
    """A run folder is missing, incomplete or inconsistent."""


class TrainingError(VaelabError):
    """Training cannot go on (for example the loss became NaN)."""


class Interrupted(VaelabError):
    """Training was stopped by Ctrl-C after saving a resumable checkpoint."""


class VaelabWarning(UserWarning):
    """Something worth telling the user that does not stop the work; the CLI prints its
    message on one line."""
