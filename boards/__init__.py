"""Board top levels: one :class:`~boards.top.BoardSpec` per supported ECP5 board.

``BOARDS`` maps the name ``tunnelnic build --board`` takes to the module defining ``SPEC``.
The default board is the Lattice Versa ECP5 (LFE5UM-45F, two RGMII ports).
"""

import importlib

__all__ = ["BOARDS", "DEFAULT_BOARD", "get_spec"]

BOARDS = {
    "versa": "boards.versa_ecp5",
    "ecpix5": "boards.ecpix5",
}
DEFAULT_BOARD = "versa"


def get_spec(name):
    """The :class:`~boards.top.BoardSpec` of board ``name``; ValueError for an unknown board."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}")
    return importlib.import_module(BOARDS[name]).SPEC
