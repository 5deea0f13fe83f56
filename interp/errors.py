"""One exception type for bad input: the CLI turns it into one line and exit code 2."""


class InterpError(Exception):
    """Bad input or a missing resource; the message says what was wrong and what is valid."""


def check_number(name: str, value: float, minimum: float = 0.0, inclusive: bool = False) -> None:
    """Refuse nan, inf and values at or below `minimum` (below it with `inclusive`): `nan <= 0` is False,
    so a plain comparison lets nan through to a half-made run."""
    import math

    ok = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
    if not ok:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise InterpError(f"{name} must be a finite number {bound} (got {value})")
