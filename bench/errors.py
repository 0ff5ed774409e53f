"""Errors a user can cause and fix. The runner prints their message as one sentence and exits 2."""


class UserError(Exception):
    """A mistake in the command line, the data or the environment that the user can fix."""

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """A task, model or size name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PairError(UserError):
    """A (task, model, size) combination that cannot run, raised before any data is loaded."""


class DataError(UserError):
    """Missing, empty, unreachable or malformed data."""
