"""One exception type for bad input: the CLI turns it into one line and exit code 2."""


class InterpError(Exception):
    """Bad input or a missing resource; the message says what was wrong and what is valid."""
