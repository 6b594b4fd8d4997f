"""Exceptions that the CLI turns into one-line messages."""


class AuditorError(Exception):
    """A user-facing error: bad input, missing file, unusable option.

    The CLI prints ``auditor: error: <message>`` and exits 2; no traceback.
    """


class TargetError(AuditorError):
    """A target that cannot be scanned at all (bad URL, unresolvable host, refused address)."""
