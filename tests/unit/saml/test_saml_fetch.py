"""The HTTPS metadata fetcher: refusals without touching the network, and a real local
HTTPS server (stdlib ``http.server`` with a certificate from a test CA made with
``cryptography``) for what only a real connection can show."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from _pki import LocalPki, make_test_pki
from nulabpass.saml import HttpsMetadataFetcher, MetadataFetchError
from nulabpass.saml._fetch import address_refusal, check_metadata_url

DOCUMENT = b'<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:x"/>'


def _resolver(*addresses: str) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


def _code(fetcher: HttpsMetadataFetcher, url: str) -> str:
    with pytest.raises(MetadataFetchError) as err:
        fetcher.fetch(url)
    return err.value.code


# -- refusals before any connection ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://idp.example.test/metadata", "saml.fetch_https_required"),
        ("HTTP://idp.example.test/metadata", "saml.fetch_https_required"),
        ("ftp://idp.example.test/metadata", "saml.fetch_https_required"),
        ("//idp.example.test/metadata", "saml.fetch_https_required"),
        ("https:///metadata", "saml.fetch_url_invalid"),
        ("https://user:pw@idp.example.test/metadata", "saml.fetch_url_invalid"),
        ("https://idp.example.test:99999/metadata", "saml.fetch_url_invalid"),
    ],
)
def test_only_plain_https_urls_with_a_host_are_fetched(url: str, code: str) -> None:
    assert _code(HttpsMetadataFetcher(resolver=_resolver("203.0.113.1")), url) == code


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert address_refusal(address) is not None
    fetcher = HttpsMetadataFetcher(resolver=_resolver(address))
    assert _code(fetcher, "https://idp.example.test/metadata") == "saml.fetch_address_refused"


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass_the_check(address: str) -> None:
    assert address_refusal(address) is None


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    fetcher = HttpsMetadataFetcher(resolver=_resolver("8.8.8.8", "10.0.0.1"))
    assert _code(fetcher, "https://idp.example.test/") == "saml.fetch_address_refused"


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/metadata", "https://[::1]/metadata", "https://[::ffff:a00:1]/"]
)
def test_ip_literals_are_vetted_without_dns(url: str) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal needs no resolution")

    assert _code(HttpsMetadataFetcher(resolver=no_dns), url) == "saml.fetch_address_refused"


def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    fetcher = HttpsMetadataFetcher(resolver=fail)
    assert _code(fetcher, "https://idp.example.test/") == "saml.fetch_dns_failed"
    assert _code(HttpsMetadataFetcher(resolver=_resolver()), "https://x.test/") == (
        "saml.fetch_dns_failed"
    )


def test_check_metadata_url_splits_host_port_and_path() -> None:
    assert check_metadata_url("https://idp.test:8443/a/b?x=1") == ("idp.test", 8443, "/a/b?x=1")
    assert check_metadata_url("https://idp.test") == ("idp.test", 443, "/")


def test_a_context_that_does_not_verify_is_refused() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    with pytest.raises(ValueError, match="verify"):
        HttpsMetadataFetcher(ssl_context=context)


# -- a real HTTPS server -----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
    seen_hosts: list[str] = []

    def do_GET(self) -> None:
        type(self).seen_hosts.append(self.headers.get("Host", ""))
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve(body: bytes, *, length: bool = True) -> Callable[[BaseHTTPRequestHandler], None]:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/samlmetadata+xml")
        if length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def _redirect(location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def _trickle(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        for _ in range(200):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        return


class _Server:
    def __init__(self, pki: LocalPki) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki.cert_file), str(pki.key_file))
        handler = type("Handler", (_Handler,), {"routes": {}, "seen_hosts": []})
        self.handler: type[_Handler] = handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_test_pki(
        tmp_path_factory.mktemp("pki"), common_name="idp.test", dns_names=("idp.test",)
    )


@pytest.fixture
def server(pki: LocalPki) -> Iterator[_Server]:
    running = _Server(pki)
    yield running
    running.close()


def _local(pki: LocalPki, **options: object) -> HttpsMetadataFetcher:
    """A fetcher that trusts the test CA, resolves every name to loopback and allows it."""
    return HttpsMetadataFetcher(
        ssl_context=pki.client_context(),
        allow_private_addresses=True,
        resolver=_resolver("127.0.0.1"),
        **options,  # type: ignore[arg-type]
    )


def test_metadata_is_fetched_from_a_real_https_server(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/metadata"] = _serve(DOCUMENT)
    assert _local(pki).fetch(server.url("/metadata")) == DOCUMENT


def test_chunked_responses_are_read_whole(pki: LocalPki, server: _Server) -> None:
    def chunked(handler: BaseHTTPRequestHandler) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for start in range(0, len(DOCUMENT), 10):
            piece = DOCUMENT[start : start + 10]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    server.handler.routes["/chunked"] = chunked
    assert _local(pki).fetch(server.url("/chunked")) == DOCUMENT


def test_the_connection_goes_to_the_vetted_address_and_tls_checks_the_name(
    pki: LocalPki, server: _Server
) -> None:
    """``idp.test`` exists only in the injected resolver: the fetcher connects to the
    address it vetted and presents the name for SNI, certificate check and Host."""
    server.handler.routes["/metadata"] = _serve(DOCUMENT)
    assert _local(pki).fetch(server.url("/metadata", host="idp.test")) == DOCUMENT
    assert server.handler.seen_hosts[-1] == f"idp.test:{server.port}"


def test_a_certificate_for_another_name_is_refused(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/metadata"] = _serve(DOCUMENT)
    url = server.url("/metadata", host="other.test")
    assert _code(_local(pki), url) == "saml.fetch_tls_failed"


def test_an_untrusted_ca_is_refused(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/metadata"] = _serve(DOCUMENT)
    fetcher = HttpsMetadataFetcher(allow_private_addresses=True, resolver=_resolver("127.0.0.1"))
    assert _code(fetcher, server.url("/metadata")) == "saml.fetch_tls_failed"


def test_loopback_is_refused_unless_allowed(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/metadata"] = _serve(DOCUMENT)
    fetcher = HttpsMetadataFetcher(
        ssl_context=pki.client_context(), resolver=_resolver("127.0.0.1")
    )
    assert _code(fetcher, server.url("/metadata")) == "saml.fetch_address_refused"
    assert _code(fetcher, server.url("/metadata", host="127.0.0.1")) == (
        "saml.fetch_address_refused"
    )


def test_an_announced_oversize_body_is_refused(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/big"] = _serve(b"x" * 5000)
    assert _code(_local(pki, max_bytes=4096), server.url("/big")) == "saml.fetch_too_large"


def test_an_oversize_body_without_length_is_refused_while_streaming(
    pki: LocalPki, server: _Server
) -> None:
    server.handler.routes["/big"] = _serve(b"x" * 300_000, length=False)
    assert _code(_local(pki, max_bytes=100_000), server.url("/big")) == "saml.fetch_too_large"


def test_a_slow_response_hits_the_total_time_limit(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/slow"] = _trickle
    assert _code(_local(pki, timeout=0.5), server.url("/slow")) == "saml.fetch_timeout"


def test_http_errors_are_reported_with_their_status(pki: LocalPki, server: _Server) -> None:
    with pytest.raises(MetadataFetchError) as err:
        _local(pki).fetch(server.url("/missing"))
    assert err.value.code == "saml.fetch_http_status"
    assert err.value.details["received"] == "404"


def test_redirects_are_followed_up_to_the_limit(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/metadata"] = _serve(DOCUMENT)
    server.handler.routes["/r1"] = _redirect("/metadata")
    server.handler.routes["/r2"] = _redirect(server.url("/r1"))
    assert _local(pki).fetch(server.url("/r2")) == DOCUMENT
    assert _code(_local(pki, max_redirects=1), server.url("/r2")) == (
        "saml.fetch_redirect_refused"
    )
    assert _code(_local(pki, max_redirects=0), server.url("/r1")) == (
        "saml.fetch_redirect_refused"
    )


def test_a_redirect_target_is_vetted_again(pki: LocalPki, server: _Server) -> None:
    server.handler.routes["/to-http"] = _redirect("http://idp.test/metadata")
    assert _code(_local(pki), server.url("/to-http")) == "saml.fetch_https_required"

    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"] if host == "localhost" else []

    server.handler.routes["/elsewhere"] = _redirect("https://intranet.test/metadata")
    fetcher = HttpsMetadataFetcher(
        ssl_context=pki.client_context(), allow_private_addresses=True, resolver=resolve
    )
    assert _code(fetcher, server.url("/elsewhere")) == "saml.fetch_dns_failed"
    assert resolved == ["localhost", "intranet.test"]


def test_a_refused_connection_is_a_connect_failure(pki: LocalPki) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fetcher = _local(pki)
    assert _code(fetcher, f"https://localhost:{port}/metadata") == "saml.fetch_connect_failed"
