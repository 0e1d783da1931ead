"""The one exception type a user should ever see: a sentence that says what to do."""


class EdgeguardError(Exception):
    """A problem with the user's input or environment (not a bug): the CLI prints it, no traceback."""
