"""The data a network is tested on, and the *functions* it carries: subsets of examples and/or
output groups (spec §5) that masks and knockouts ask about one by one."""

__all__: list[str] = []
