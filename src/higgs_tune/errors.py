"""The one kind of error the command line shows as a single line: a problem with what the user gave.

Bad samples, bad config values, a model name that leads nowhere, a full disk: the user can fix each of
them, so a traceback would only hide the message. `cli.main` prints any `UserError` as one line and exits
with status 2; every other exception is a bug in higgs-tune and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem the user can fix; the message names the sample, file, option or model, and the fix."""


class DiskFullError(UserError, OSError):
    """No space left on the device while writing `path`: nothing half-written is kept or trusted."""

    def __init__(self, path: object) -> None:
        self.path = path
        super().__init__(
            f"no space left on device writing {path}: free some space, then run the same command again "
            "(add --resume for train); nothing half-written is kept"
        )
