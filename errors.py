"""The one exception type for a user's mistake: `launch.py` prints its message and exits 2."""


class UserError(Exception):
    """A bad config, path, dataset or input. The message is one line: the problem and the fix."""
