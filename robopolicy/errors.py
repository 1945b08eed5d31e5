"""Errors caused by user input (bad paths, bad files, bad configs).

The CLI prints these as one line and exits with status 2, without a traceback; anything else is a
bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with what the user asked for, with a message that names the file, field or episode."""
