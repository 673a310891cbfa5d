"""Dynamic request headers of remote connections (LanceDB's ``lancedb.remote.header``).

A :class:`HeaderProvider` given as ``ClientConfig.header_provider`` is asked for its
headers before every request; they win over ``extra_headers`` and the defaults of the
same name. A connection or table with one does not pickle (ValueError naming
``header_provider``): build the connection in the worker instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["HeaderProvider", "StaticHeaderProvider"]


class HeaderProvider(ABC):
    """Gives the headers of the next request; called on whichever thread sends it."""

    @abstractmethod
    def get_headers(self) -> dict[str, str]:
        """The headers to send; an exception fails the request."""


class StaticHeaderProvider(HeaderProvider):
    """The same headers every time."""

    def __init__(self, headers: dict[str, str]):
        self._headers = dict(headers)

    def get_headers(self) -> dict[str, str]:
        return dict(self._headers)
