"""The one error of the Superset side, at the bottom of its modules' order (errors, access,
client, server, bundle, cli: each imports only those before it)."""


class SupersetError(RuntimeError):
    """Superset could not be bootstrapped, started or reached; the message says where to look."""
