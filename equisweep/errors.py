"""The one exception type that means "the user gave us something wrong".

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a field, file or argument the user can fix. The message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def unknown_sweep(name: str, store_uri, known) -> UserError:
    """The one message every command gives for a sweep the store does not have."""
    listing = ", ".join(sorted(known)) if known else "none"
    return UserError(f"no sweep {name!r} in results store {store_uri} (sweeps: {listing})")
