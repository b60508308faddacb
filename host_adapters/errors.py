"""What host operations raise; the executor records each as the command's outcome."""

from __future__ import annotations


class HostError(Exception):
    """A host step failed: a command exited non-zero, a path was refused, a file was missing."""

    def __init__(self, message: str, stderr_tail: list[str] | None = None):
        super().__init__(message)
        self.stderr_tail = stderr_tail or []


class Cancelled(Exception):
    """A long host operation stopped because the command was asked to cancel."""
