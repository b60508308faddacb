"""Errors raised by the ledger; the CLI turns each into one line and exit code 4."""


class LedgerError(Exception):
    """The ledger file cannot be used: locked, unreadable, full, foreign or too new."""


class LedgerLocked(LedgerError):
    """Another process held the ledger's write lock past the busy timeout."""


class ChainBroken(LedgerError):
    """The hash chain does not hold: nothing may be appended onto it."""


class SchemaTooNew(LedgerError):
    """The ledger file was written by a newer l4d2ctl than the one reading it."""
