"""The one error type of bad input: its message is the one line the user sees."""


class PlanError(ValueError):
    """Bad plan, config or file. str(err) is a single line naming the field and what is allowed."""
