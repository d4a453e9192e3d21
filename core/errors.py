"""Errors a user can act on.

`UserError` carries one clear sentence for the page (`st.error`) or the terminal; anything else is a bug.
"""


class UserError(ValueError):
    """A problem with the user's input or environment, stated as a sentence they can act on."""


class DataError(UserError):
    """Malformed or unusable market data."""


class ExchangeUnavailable(UserError):
    """The exchange cannot be reached."""
