"""The one exception type a user sees: it names the file and says what to do."""


class FoldwiseError(Exception):
    """A problem with the user's data, files or command; the CLI prints it without a traceback."""
