"""User-facing errors: the CLI prints their message on one line and exits non-zero, no traceback."""
from __future__ import annotations


class UasbenchError(Exception):
    """A problem with the user's input (a file, a folder, an option). Its message names the culprit."""

    exit_code = 1


class UsageError(UasbenchError):
    """An unknown choice for an option (method, pair, profile, device). The CLI exits with code 2."""

    exit_code = 2
