"""Errors of the command layer; the CLI turns each into one line and its exit code."""


class InvalidInput(Exception):
    """The request is malformed (bad name, bad spec, bad option): nothing was written."""


class InvalidName(InvalidInput):
    """An instance name or overlay alias breaks the naming rule."""


class InvalidSpec(InvalidInput):
    """A spec file cannot be read or breaks a rule; the message names the field."""


class Rejected(Exception):
    """The recorded state does not allow the command."""


class OutputLost(Exception):
    """A reading command's answer could not all be written to stdout (a full disk): a script must not take what
    was written for the whole answer."""
