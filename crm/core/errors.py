"""One exception type for everything a user can act on."""


class CrmError(Exception):
    """A problem the user can fix, told in one sentence (Chinese first).

    The CLI turns it into that sentence on stderr and a non-zero exit; nothing else
    reaches the user as a traceback for bad input.
    """

    exit_code = 1


class PermissionDenied(CrmError):
    """The current user's role does not allow this action."""

    exit_code = 3


class NotFound(CrmError):
    """A household, project or record named by the user does not exist."""

    exit_code = 4
