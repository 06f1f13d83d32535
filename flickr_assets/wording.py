"""How counts read in log lines, metadata and check results: ``1 call``, ``2 calls``, ``1,000 keywords``."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` with thousands separators and ``noun`` in the singular or plural (default: noun + "s")."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
