"""The one exception type the CLI turns into a one-line error and exit code 2."""


class PoldistError(Exception):
    """A user-facing error: bad input, bad checkpoint, mismatch. Raised before work starts."""
