"""HTTP calls to partners' servers, refusing private and metadata addresses (SSRF protection).

The host is resolved once, every address it resolves to is checked, and the connection goes to a
checked address (the URL's host name still used for TLS and the Host header), so a DNS answer that
changes between the check and the call cannot slip a private address in. Redirects are not
followed unless asked; when they are, each hop is checked the same way.

Connections are kept alive and reused per checked address (a pool per scheme, host, port and
address, shared by a process's threads), so a batch of calls to one buyer opens few connections.
"""

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

MAX_REDIRECTS = 3
READ_LIMIT = 64 * 1024  # enough to parse an answer; the log keeps the first 2 kB
_pool_manager_headers = {"User-Agent": "leadcrm-delivery/1.0"}


class UnsafeDestination(Exception):
    """The URL is not one we may call: bad scheme, or it resolves to a private address."""


class TransportError(Exception):
    """No answer: connection refused or reset, DNS failure, timeout."""


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    latency_ms: int
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # 64:ff9b::a00:1 reaches 10.0.0.1 through a NAT64 gateway
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::7f00:1 form of 127.0.0.1
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT: ::ffff:0:7f00:1 is 127.0.0.1 through a translator


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in LOCAL_NAT64:
            return True
        # IPv6 forms that carry an IPv4 address are judged by that address.
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        elif ip.sixtofour:
            ip = ip.sixtofour  # 2002:7f00:1:: is 6to4 for 127.0.0.1
        elif ip in NAT64 or ip in IPV4_COMPATIBLE or ip in IPV4_TRANSLATED:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return not ip.is_global or ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise TransportError(f"Cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to); raises UnsafeDestination."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination(f"Only http and https URLs can be called, not {url[:100]!r}.")
    if parts.username or parts.password:
        raise UnsafeDestination("Put credentials in the destination's authentication, not in the URL.")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeDestination(f"Bad port in {url[:100]!r}.") from error
    if host in settings.DELIVERY_ALLOWED_HOSTS:
        return parts.scheme, host, port, host
    addresses = _resolve(host, port)
    refused = [address for address in addresses if _refused_address(address)]
    if refused:
        raise UnsafeDestination(
            f"{host} resolves to a private, loopback, link-local or reserved address ({', '.join(refused)}); "
            "leadcrm does not call those. An operator can allow the host in DELIVERY_ALLOWED_HOSTS."
        )
    return parts.scheme, host, port, addresses[0]


_pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
_pools_lock = threading.Lock()
MAX_POOLS = 256  # destinations a process keeps connections to; the oldest are closed beyond it


def _pool(scheme: str, host: str, port: int, address: str) -> urllib3.HTTPConnectionPool:
    key = (scheme, host, port, address)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            # Connections kept per destination: a batch's calls to it, or one ping from each of the
            # auctions a worker runs at once (more would be closed after use, each with a warning).
            size = max(settings.PARTNER_CALLS_PER_DESTINATION, settings.AUCTIONS_AT_ONCE)
            if scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    address, port, retries=False, server_hostname=host, assert_hostname=host, maxsize=size
                )
            else:
                pool = urllib3.HTTPConnectionPool(address, port, retries=False, maxsize=size)
            if len(_pools) >= MAX_POOLS:
                _pools.pop(next(iter(_pools))).close()
            _pools[key] = pool
        return pool


def close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


# Redirects that keep the method and body: the address moved. Others after a post are read with a GET.
MOVED_STATUSES = (301, 307, 308)


def _same_site(url: str, next_url: str) -> bool:
    """The same scheme, host and port, or the move of the same host from http to https (its default
    ports): what the destination's own headers and the lead may follow."""
    here, there = urlsplit(url), urlsplit(next_url)
    if (here.scheme, here.netloc) == (there.scheme, there.netloc):
        return True
    upgrade = here.scheme == "http" and there.scheme == "https" and here.hostname == there.hostname
    return upgrade and here.port in (None, 80) and there.port in (None, 443)


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    follow_redirects: bool = False,
    connect_timeout: float | None = None,
) -> HttpAnswer:
    """One request with our safety rules; raises UnsafeDestination or TransportError.

    `connect_timeout`: shorter than DELIVERY_CONNECT_TIMEOUT for a call that is worthless late (a ping)."""
    started = time.monotonic()
    connect_timeout = settings.DELIVERY_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    deadline = started + timeout + connect_timeout
    for _hop in range(MAX_REDIRECTS + 1):
        scheme, host, port, address = check_url(url)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if scheme == "https" else 80
        bracketed = f"[{host}]" if ":" in host else host  # an IPv6 literal
        host_header = bracketed if port == default_port else f"{bracketed}:{port}"
        all_headers = {**_pool_manager_headers, **(headers or {}), "Host": host_header}
        pool = _pool(scheme, host, port, address)
        try:
            response = pool.urlopen(
                method,
                path,
                body=body,
                headers=all_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            )
            complete = False
            try:
                chunks, size = [], 0
                while size < READ_LIMIT:
                    # read1 returns what has arrived instead of waiting for a full chunk, so a
                    # server that drips its answer cannot hold the worker past the deadline.
                    if time.monotonic() > deadline:
                        raise TransportError("The answer took longer than the timeout.")
                    chunk = response.read1(8192)
                    if not chunk:
                        complete = True
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                payload = b"".join(chunks)[:READ_LIMIT]
            finally:
                if not complete:
                    response.close()  # unread bytes left: the connection is not reused
                response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            raise TransportError(f"{type(error).__name__}: {error}"[:300]) from error
        answer = HttpAnswer(
            status=response.status,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=payload,
            latency_ms=int((time.monotonic() - started) * 1000),
            url=url,
        )
        location = answer.headers.get("location")
        if not (follow_redirects and 300 <= answer.status < 400 and location):
            return answer
        next_url = urljoin(url, location)
        moved = answer.status in MOVED_STATUSES
        if not _same_site(url, next_url):
            # Headers (credentials, signatures) are for the destination's own site: never for another
            # host, nor in clear text after a downgrade; nor is the lead posted there again.
            if moved and body:
                raise UnsafeDestination(f"Redirect to another origin ({next_url[:100]}) would re-send the body.")
            headers = {}
        url = next_url
        # A 301, 307 or 308 says the address moved (http to https, a trailing slash): the lead is posted
        # again there, as a GET would drop it and a 2xx to that GET book a sale the buyer never
        # received. A 302 or 303 after a post says it was received ("see here", as a form answers):
        # it is read with a GET, as browsers do.
        if not moved:
            method, body = "GET", None
    raise TransportError(f"More than {MAX_REDIRECTS} redirects.")
