"""Writing to stdout so that a reader going away never stops a command; light to import (no rich), since a
`--no-wait` call prints only its ids."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TextIO, TypeVar, cast

import click

from projections import CommandView

from ..domain.errors import OutputLost

T = TypeVar("T")


def silence(stream: TextIO | None) -> None:
    """Point a standard stream's descriptor at /dev/null: Python flushes it once more at exit, which must land
    nowhere, not fail. A stream that was closed from the start (None) has nothing to silence."""
    try:
        descriptor = stream.fileno() if stream is not None else None
    except (OSError, ValueError):
        descriptor = None
    if descriptor is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, descriptor)
        os.close(devnull)


class ReadingOutput:
    """stdout for a reading command's answer: a reader that went away (`| head`) ends it quietly (what it wanted
    it had); any other failure to write it, a full disk, is `OutputLost`, so an answer cut short never passes
    for a whole one. A stdout closed from the start (`>&-`, None) had no reader at all."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream
        self.reader_gone = stream is None

    def write(self, text: str) -> int:
        """Write `text` unless the reader went away."""
        return self._quietly(lambda: cast(TextIO, self.stream).write(text), len(text))

    def flush(self) -> None:
        """Flush unless the reader went away."""
        self._quietly(lambda: cast(TextIO, self.stream).flush(), None)

    def _quietly(self, act: Callable[[], T], instead: T) -> T:
        if self.reader_gone:
            return instead
        try:
            return act()
        except BrokenPipeError:
            self.reader_gone = True
            silence(self.stream)
            return instead
        except OSError as error:
            silence(self.stream)
            raise OutputLost(f"the answer could not all be written to stdout: {error.strerror}") from error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # isatty, fileno, encoding: what a console asks of its file


class Stdout:
    """stdout while someone reads it: a reader that went away (`| head -1`), or a stdout that cannot take more
    (a full disk), silences the rest of the output and never stops the command."""

    def __init__(self) -> None:
        self.reader_gone = False

    def write(self, write: Callable[[], None]) -> None:
        """Run `write` (which prints to stdout) and flush, unless the reader is gone."""
        if self.reader_gone:
            return
        try:
            write()
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError:
            self.reader_gone = True
            silence(sys.stdout)

    def queued(self, commands: Sequence[CommandView], *, as_json: bool, as_list: bool) -> None:
        """With --no-wait: the ids a script needs, one per line; with `as_json`, the command object (a list of
        them for a bulk call, `as_list`)."""
        if not as_json:
            for command in commands:
                self.write(partial(click.echo, command.command_id))
        elif as_list:
            self.write(lambda: click.echo(json.dumps([command.summary() for command in commands])))
        else:
            (command,) = commands
            self.write(lambda: click.echo(json.dumps(command.summary())))
