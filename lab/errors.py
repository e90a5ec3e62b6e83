"""Errors the lab reports to its user as one line, without a traceback."""


class LabError(Exception):
    """A problem the user can fix; str() is the one-line message (what, where, the fix)."""


class TopologyError(LabError):
    """A topology file that does not describe a buildable lab."""

    def __init__(self, source, field, problem, fix):
        self.source, self.field, self.problem, self.fix = source, field, problem, fix
        super().__init__(f"{source}: {field}: {problem}; {fix}")
