"""Helpers for the suites that run code in other processes (see tests/README.md).

``hang``: the hang detector; ``data``: the tables, permutations and collate functions the
suites build; ``*_scenarios``: what each suite runs in its children. Everything a child
runs is defined at module level, so the ``spawn`` and ``forkserver`` start methods import
it by name.
"""
