"""Fetching IdP metadata over HTTPS, safely: :class:`HttpsMetadataFetcher`.

Theory of operation
-------------------
An admin types the metadata URL, and the server then fetches it on a schedule: that is a
server-side request to a place an outsider chose, so the fetcher guards against being
pointed at the host's own network (SSRF) and against hostile servers:

1. The URL must be ``https://`` with a host name, no user info and a valid port.
2. The host name is resolved once; every address it resolves to must be public. Private,
   loopback, link-local, shared (CGNAT), multicast, reserved and unspecified addresses are
   refused, for IPv4 and IPv6, including IPv4 addresses embedded in IPv6 ones (mapped,
   6to4, Teredo, NAT64). ``allow_private_addresses=True`` lifts this for tests and for
   intranet IdPs.
3. The TCP connection goes to one of the vetted addresses, never to the name again, so a
   DNS answer that changes between the check and the connection (DNS rebinding) cannot
   redirect it. TLS is verified against the host name (SNI and certificate), with the
   system's trust store unless a CA file or an ``ssl.SSLContext`` is given.
4. The response must be ``200``. Redirects are followed only when ``max_redirects`` allows
   (3 by default), each target vetted from step 1 again.
5. The body is read in pieces and refused as soon as it exceeds ``max_bytes`` (1 MiB by
   default); a ``Content-Length`` above the limit is refused before reading.
6. One deadline (``timeout`` seconds, 10 by default) bounds the whole fetch, redirects
   included: every socket operation gets the time that remains, and a watchdog shuts the
   socket down when the deadline passes, so a server that trickles bytes cannot hold the
   caller longer.

Every failure raises :class:`MetadataFetchError` with a stable code.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

from nulabpass.errors import NulabPassError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HttpsMetadataFetcher",
    "MetadataFetchError",
    "address_refusal",
    "check_metadata_url",
]

#: Default bound on a metadata document (Entra ID's are about 20 KB).
DEFAULT_MAX_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8"

Resolver = Callable[[str, int], Sequence[str]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class MetadataFetchError(NulabPassError):
    """Fetching an IdP metadata document failed or was refused.

    Codes: ``saml.fetch_url_invalid``, ``saml.fetch_https_required``,
    ``saml.fetch_address_refused``, ``saml.fetch_dns_failed``,
    ``saml.fetch_connect_failed``, ``saml.fetch_tls_failed``, ``saml.fetch_timeout``,
    ``saml.fetch_too_large``, ``saml.fetch_http_status``, ``saml.fetch_redirect_refused``,
    ``saml.fetch_failed`` (anything else).
    """

    default_code = "saml.fetch_failed"
    default_public_message = "The identity provider's metadata could not be downloaded."
    http_status = 502

    def __init__(self, code: str, message: str, *, details: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, details=details)


def address_refusal(address: str) -> str | None:
    """Why ``address`` is not a public unicast address, or ``None`` when it is one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = address_refusal(str(embedded))
            return None if reason is None else f"embeds {embedded}, which is {reason}"
    for flag, reason in (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip in _SHARED, "a shared (carrier-grade NAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    ):
        if flag:
            return reason
    return None


def check_metadata_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of an acceptable metadata URL (``https://``, a host, no
    user info, a valid port); raise :class:`MetadataFetchError` otherwise. No I/O."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise MetadataFetchError(
            "saml.fetch_url_invalid", "The metadata URL is not a valid URL."
        ) from None
    if parts.scheme.lower() != "https":
        raise MetadataFetchError(
            "saml.fetch_https_required",
            "The metadata URL must use https://; metadata fetched without TLS could be "
            "replaced in transit.",
            details={"received": parts.scheme or "(none)"},
        )
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise MetadataFetchError(
            "saml.fetch_url_invalid",
            "The metadata URL must name a host and carry no user name or password.",
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port, path


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> MetadataFetchError:
        return MetadataFetchError(
            "saml.fetch_timeout",
            f"Fetching the metadata took longer than {self.seconds:g} seconds; the identity "
            "provider's server is slow or unreachable.",
        )


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a vetted address, verifying TLS against the host name."""

    def __init__(
        self, host: str, port: int, address: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


class HttpsMetadataFetcher:
    """The default :class:`~nulabpass.ports.MetadataFetcher` (see the module docstring).

    ``ssl_context`` (or ``cafile``) replaces the system trust store, e.g. to trust a
    test CA; ``resolver`` replaces the system's ``getaddrinfo`` (``(host, port) ->
    addresses``).
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 10.0,
        max_redirects: int = 3,
        allow_private_addresses: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        resolver: Resolver | None = None,
        user_agent: str = "nulabpass-metadata-fetcher",
    ) -> None:
        if max_bytes <= 0 or timeout <= 0 or max_redirects < 0:
            raise ValueError("max_bytes and timeout must be positive, max_redirects >= 0")
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.allow_private_addresses = allow_private_addresses
        context = ssl_context or ssl.create_default_context(cafile=cafile)
        if not context.check_hostname or context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("the SSL context must verify certificates and host names")
        self._context = context
        self._resolver = resolver
        self._user_agent = user_agent

    def fetch(self, url: str) -> bytes:
        """Download the document at ``url``; raise :class:`MetadataFetchError`."""
        deadline = _Deadline(self.timeout)
        current = url
        for hop in range(self.max_redirects + 1):
            status, location, body = self._get(current, deadline)
            if status == 200:
                return body
            if status in _REDIRECTS and location:
                if hop == self.max_redirects:
                    break
                current = urljoin(current, location)
                continue
            raise MetadataFetchError(
                "saml.fetch_http_status",
                f"The metadata URL answered HTTP {status}; expected 200 with the metadata "
                "document.",
                details={"received": str(status)},
            )
        raise MetadataFetchError(
            "saml.fetch_redirect_refused",
            f"The metadata URL redirected more than {self.max_redirects} time(s); give "
            "the final URL of the document.",
            details={"expected": str(self.max_redirects)},
        )

    # -- steps ---------------------------------------------------------------------------

    def check_url(self, url: str) -> tuple[str, int, str]:
        """``(host, port, path)`` of an acceptable URL; raise otherwise. No I/O."""
        return check_metadata_url(url)

    def _addresses(self, host: str, port: int, deadline: _Deadline) -> list[str]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            resolve = self._resolver or _system_resolver
            # getaddrinfo has no timeout of its own: wait for it at most until the deadline.
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nulabpass-resolve")
            try:
                addresses = list(pool.submit(resolve, host, port).result(deadline.remaining()))
            except FutureTimeout:
                raise deadline.expired() from None
            except (OSError, UnicodeError) as exc:
                raise MetadataFetchError(
                    "saml.fetch_dns_failed",
                    f"The host name {host!r} of the metadata URL could not be resolved "
                    f"({type(exc).__name__}).",
                ) from None
            finally:
                pool.shutdown(wait=False)
        if not addresses:
            raise MetadataFetchError(
                "saml.fetch_dns_failed", f"The host name {host!r} has no address."
            )
        if not self.allow_private_addresses:
            for address in addresses:
                reason = address_refusal(address)
                if reason is not None:
                    raise MetadataFetchError(
                        "saml.fetch_address_refused",
                        f"The metadata host {host!r} resolves to {address}, which is "
                        f"{reason}; metadata is only fetched from public addresses.",
                        details={"received": address},
                    )
        return addresses

    def _get(self, url: str, deadline: _Deadline) -> tuple[int, str | None, bytes]:
        host, port, path = self.check_url(url)
        addresses = self._addresses(host, port, deadline)
        # Like socket.create_connection: try each vetted address until one answers.
        for address in addresses[:-1]:
            try:
                return self._request(host, port, path, address, deadline)
            except MetadataFetchError as exc:
                if exc.code != "saml.fetch_connect_failed":
                    raise
        return self._request(host, port, path, addresses[-1], deadline)

    def _request(
        self, host: str, port: int, path: str, address: str, deadline: _Deadline
    ) -> tuple[int, str | None, bytes]:
        conn = _PinnedConnection(host, port, address, self._context, deadline.remaining())
        watchdog = threading.Timer(deadline.remaining(), _shutdown, args=(conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                conn.connect()
            except ssl.SSLError as exc:
                raise MetadataFetchError(
                    "saml.fetch_tls_failed",
                    f"The TLS connection to {host!r} failed: {exc.reason or exc}. The server "
                    "must present a valid certificate for this host name.",
                ) from None
            except TimeoutError:
                raise deadline.expired() from None
            except OSError as exc:
                if deadline.ends <= time.monotonic():
                    raise deadline.expired() from None
                raise MetadataFetchError(
                    "saml.fetch_connect_failed",
                    f"Could not connect to {host!r} at {address} port {port} "
                    f"({exc.strerror or type(exc).__name__}).",
                ) from None
            return self._exchange(conn, host, path, deadline)
        except TimeoutError:
            raise deadline.expired() from None
        except (OSError, http.client.HTTPException) as exc:
            if deadline.ends <= time.monotonic():
                raise deadline.expired() from None
            raise MetadataFetchError(
                "saml.fetch_failed",
                f"The metadata server {host!r} broke the HTTP exchange ({type(exc).__name__}).",
            ) from None
        finally:
            watchdog.cancel()
            conn.close()

    def _exchange(
        self, conn: _PinnedConnection, host: str, path: str, deadline: _Deadline
    ) -> tuple[int, str | None, bytes]:
        sock = conn.sock
        sock.settimeout(deadline.remaining())
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Accept", _ACCEPT)
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("User-Agent", self._user_agent)
        conn.putheader("Connection", "close")
        conn.endheaders()
        sock.settimeout(deadline.remaining())
        response = conn.getresponse()
        if response.status != 200:
            return response.status, response.getheader("Location"), b""
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise self._too_large(host)
        body = bytearray()
        while True:
            sock.settimeout(deadline.remaining())
            piece = response.read1(_CHUNK)
            if not piece:
                break
            body += piece
            if len(body) > self.max_bytes:
                raise self._too_large(host)
        return 200, None, bytes(body)

    def _too_large(self, host: str) -> MetadataFetchError:
        return MetadataFetchError(
            "saml.fetch_too_large",
            f"The metadata document from {host!r} is larger than {self.max_bytes} bytes.",
            details={"expected": str(self.max_bytes)},
        )


def _shutdown(conn: http.client.HTTPConnection) -> None:
    # Runs on the watchdog thread at the deadline: a blocked read wakes with an error.
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
