"""Fetch audio from a URL for ``{"url": …}`` requests — off unless enabled, and guarded.

Only http(s); the host must resolve to public addresses only (no loopback, private, link-local,
multicast or reserved ranges: the service must not become a proxy into its own network);
redirects are followed by hand so every hop is checked; size and time are bounded (the time limit
covers the whole fetch, redirects included, not only each read).

The address that is checked is the address that is connected to: the HTTP client's connections
go through :class:`_PinnedBackend`, which resolves the host itself, refuses the connection when
any address is not public, and connects to the vetted address. A host whose DNS answer changes
between the check and the connection (DNS rebinding) cannot steer the fetch into the network.
TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from app.kit.errors import BadRequest, PayloadTooLarge

MAX_REDIRECTS = 3


class RemoteAudioError(BadRequest):
    """The URL cannot be fetched (refused, unreachable, not audio, too big)."""


def check_url(url: str, *, allow_private: bool) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range
    except ValueError as exc:
        raise RemoteAudioError(f"url is not a valid URL: {exc}.") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise RemoteAudioError("url must be an http or https URL with a host.")
    if parts.username or parts.password:
        raise RemoteAudioError("url must not carry credentials.")
    resolve(parts.hostname, port or 443, allow_private=allow_private)


def resolve(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses of ``host``; any that is not public refuses the host (unless allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise RemoteAudioError(f"Cannot resolve host {host!r}.") from None
    addresses: list[str] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not allow_private and not address.is_global:
            raise RemoteAudioError("url resolves to a private or loopback address; refused.")
        if str(address) not in addresses:
            addresses.append(str(address))
    return addresses


class _PinnedBackend(httpcore.SyncBackend):
    """Connects only to addresses it has resolved and checked itself (see the module doc)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | None = None
        for address in resolve(host, port, allow_private=self.allow_private):
            try:
                return super().connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host!r}")


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool with the default backend; this one connects through the check.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_PinnedBackend(allow_private=allow_private),
        )


def fetch_audio(url: str, *, max_bytes: int, timeout: float, allow_private: bool) -> bytes:
    """The body at ``url`` (at most ``max_bytes``, within ``timeout`` seconds in all), checking
    every redirect hop and every connection."""
    deadline = time.monotonic() + timeout
    transport = _PinnedTransport(allow_private=allow_private)
    # trust_env=False: a proxy from the environment would connect on our behalf, unchecked.
    with httpx.Client(
        timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private=allow_private)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteAudioError(f"Fetching url took over {timeout:g} s.")
            try:
                with client.stream("GET", url, timeout=remaining) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise RemoteAudioError(
                            f"Fetching url returned HTTP {response.status_code}."
                        )
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise PayloadTooLarge(f"Audio at url is over {max_bytes} bytes.")
                        if time.monotonic() > deadline:
                            raise RemoteAudioError(f"Fetching url took over {timeout:g} s.")
                    return bytes(body)
            except httpx.HTTPError as exc:
                raise RemoteAudioError(f"Cannot fetch url: {type(exc).__name__}.") from None
    raise RemoteAudioError(f"url redirected more than {MAX_REDIRECTS} times.")
