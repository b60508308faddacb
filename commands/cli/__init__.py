"""The `l4d2ctl` command line: the click commands, their one-line errors, and what people see."""

from .main import cli, main

__all__ = ["cli", "main"]
