"""The one exception type for a user's mistake: `launch.py` prints its message and exits 2."""

import re
import sys


class UserError(Exception):
    """A bad config, path, dataset or input. The message is one line: the problem and the fix."""


def one_line(err: BaseException) -> str:
    """A library exception's message on one line, for a UserError built from it."""
    # ml_collections wraps a KeyError (whose text is a repr) in an AttributeError: unwrap.
    message: object = err
    while isinstance(message, BaseException) and message.args:
        message = message.args[0]
    return re.sub(r"\s+", " ", str(message)).strip()


def exit_with(main) -> None:
    """Runs a script's `main()` and exits with its status; a UserError is printed as one line
    and exits 2 (`launch.py` does the same for its commands)."""
    try:
        status = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        status = 2
    sys.exit(status)
