"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem in what the user gave (scenario, command line, files): not a bug."""


EXIT_USER_ERROR = 2  # the exit status of a user mistake (fl-sim and the Flower app alike)
