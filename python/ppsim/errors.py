"""Exceptions the command line maps to exit codes."""


class InputError(ValueError):
    """Bad input from the user (scenario, arguments, trace file): one line naming the file,
    the location and what was expected. The command line prints it and exits with code 2."""


class EnvironmentProblem(RuntimeError):
    """The machine cannot do what was asked (not root, no tracefs, build missing): exit code 3."""
