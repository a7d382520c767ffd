"""Socket diagnostics for `%{ }%` blocks (being written: see issue 6)."""


def code_values(connection):
    return {}
