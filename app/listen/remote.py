"""Fetch audio from a URL for ``{"url": …}`` requests — off unless enabled, and guarded.

Only http(s); the host must resolve to public addresses only (no loopback, private, link-local,
multicast or reserved ranges: the service must not become a proxy into its own network);
redirects are followed by hand so every hop is checked; size and time are bounded.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

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
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise RemoteAudioError(f"Cannot resolve host {parts.hostname!r}.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not allow_private and not address.is_global:
            raise RemoteAudioError("url resolves to a private or loopback address; refused.")


def fetch_audio(url: str, *, max_bytes: int, timeout: float, allow_private: bool) -> bytes:
    """The body at ``url`` (at most ``max_bytes``), checking every redirect hop."""
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private=allow_private)
            try:
                with client.stream("GET", url) as response:
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
                    return bytes(body)
            except httpx.HTTPError as exc:
                raise RemoteAudioError(f"Cannot fetch url: {type(exc).__name__}.") from None
    raise RemoteAudioError(f"url redirected more than {MAX_REDIRECTS} times.")
