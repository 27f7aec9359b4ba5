"""A :class:`~nulabpass.ports.MetadataFetcher` that serves documents from a table."""

from __future__ import annotations

from nulabpass.saml._fetch import MetadataFetchError

__all__ = ["StaticMetadataFetcher"]


class StaticMetadataFetcher:
    """Serves published documents by URL; any other URL fails as a real server would
    (``saml.fetch_http_status``), and :meth:`fail` makes one URL raise a given error.

    ``requests`` lists every URL asked for, in order.
    """

    def __init__(self) -> None:
        self._documents: dict[str, bytes] = {}
        self._errors: dict[str, MetadataFetchError] = {}
        self.requests: list[str] = []

    def publish(self, url: str, document: bytes) -> None:
        """Serve ``document`` at ``url`` from now on (clearing a simulated failure)."""
        self._errors.pop(url, None)
        self._documents[url] = document

    def fail(self, url: str, code: str = "saml.fetch_connect_failed") -> None:
        """Make fetches of ``url`` raise :class:`~nulabpass.saml.MetadataFetchError`."""
        self._errors[url] = MetadataFetchError(code, f"Simulated failure fetching {url}.")

    def fetch(self, url: str) -> bytes:
        """The document published at ``url``."""
        self.requests.append(url)
        error = self._errors.get(url)
        if error is not None:
            raise MetadataFetchError(error.code, error.message)
        document = self._documents.get(url)
        if document is None:
            raise MetadataFetchError(
                "saml.fetch_http_status",
                f"Nothing is published at {url}.",
                details={"received": "404"},
            )
        return document
