"""The one exception type that means "the user gave us something wrong".

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a field, file or argument the user can fix. The message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
