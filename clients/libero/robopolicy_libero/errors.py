"""Errors caused by the user's input to the LIBERO client."""


class ClientInputError(Exception):
    """A bad argument (unknown suite or task, empty range): printed as one line, exit status 2."""


class RunStopped(Exception):
    """The run cannot go on (the policy server stayed away, or came back serving another policy):
    printed as one line, exit status 1; the episodes already logged are kept."""
