"""The one exception type for user mistakes: command lines print it as a single line, no traceback."""


class UserError(Exception):
    """A problem with the user's input (a name, a path, a file, a range), stated in one line."""
