"""SSRF protection of outbound calls, redirects, timeouts, and how partner answers are judged.

A real local HTTP server (pytest-httpserver, listening on "localhost") plays the partner. The
loopback address it listens on is exactly what the checks refuse, so a refused call that never
reached it shows the check ran before any connection.
"""

import contextlib
import json
import socket
import threading
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from leads.services import outbound_http
from leads.services.answers import MAX_RETRY_AFTER, RETRY_DELAYS, Outcome, judge_answer, retry_delay
from leads.services.outbound_http import (
    MAX_REDIRECTS,
    HttpAnswer,
    TransportError,
    UnsafeDestination,
    check_url,
    http_request,
)


@pytest.fixture(autouse=True)
def no_allowed_hosts(settings):
    settings.DELIVERY_ALLOWED_HOSTS = []
    settings.DELIVERY_CONNECT_TIMEOUT = 2.0


@pytest.fixture
def pools_opened(monkeypatch):
    """Counts connection pools http_request opens; a refused URL must open none."""
    opened = []
    real_pool = outbound_http._pool

    def counting_pool(*args, **kwargs):
        opened.append(args)
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(outbound_http, "_pool", counting_pool)
    return opened


def _answer(status: int, body=b"", headers: dict | None = None) -> HttpAnswer:
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
    return HttpAnswer(status=status, headers=headers or {}, body=body, latency_ms=5, url="https://buyer.example/x")


# --- Refused destinations ----------------------------------------------------------------------

REFUSED_LOCAL = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://127.1:{port}/",  # short form of 127.0.0.1
]


@pytest.mark.parametrize("template", REFUSED_LOCAL)
def test_loopback_destinations_are_refused_before_any_connection(template, httpserver, pools_opened):
    httpserver.expect_request("/").respond_with_data("should never be seen")
    url = template.format(port=httpserver.port)

    with pytest.raises(UnsafeDestination, match="private, loopback"):
        check_url(url)
    with pytest.raises(UnsafeDestination):
        http_request("GET", url, timeout=2)

    assert pools_opened == []
    assert httpserver.log == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fd00::1]/",  # unique local IPv6
        "http://[fe80::1]/",  # link-local IPv6
        "http://[::ffff:169.254.169.254]/",
        "http://224.0.0.1/",  # multicast
    ],
)
def test_private_link_local_and_metadata_addresses_are_refused(url, pools_opened):
    with pytest.raises(UnsafeDestination, match="private, loopback"):
        http_request("GET", url, timeout=2)
    assert pools_opened == []


@pytest.mark.parametrize(
    "url",
    ["ftp://{host}:{port}/", "file:///etc/passwd", "gopher://{host}:{port}/", "http:///no-host", "localhost:{port}/"],
)
def test_only_http_and_https_urls_can_be_called_even_on_an_allowed_host(url, settings, httpserver, pools_opened):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    httpserver.expect_request("/").respond_with_data("should never be seen")
    url = url.format(host=httpserver.host, port=httpserver.port)

    with pytest.raises(UnsafeDestination, match="Only http and https"):
        http_request("GET", url, timeout=2)

    assert pools_opened == []
    assert httpserver.log == []


@pytest.mark.parametrize("userinfo", ["user:pass@", "user@", ":pass@"])
def test_credentials_in_the_url_are_refused_even_on_an_allowed_host(userinfo, settings, httpserver, pools_opened):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    httpserver.expect_request("/").respond_with_data("should never be seen")

    with pytest.raises(UnsafeDestination, match="credentials"):
        http_request("GET", f"http://{userinfo}{httpserver.host}:{httpserver.port}/", timeout=2)

    assert pools_opened == []
    assert httpserver.log == []


def test_a_bad_port_is_refused(pools_opened):
    with pytest.raises(UnsafeDestination, match="Bad port"):
        http_request("GET", "http://buyer.example:99999/", timeout=2)
    assert pools_opened == []


def test_a_public_address_passes_the_check_without_dns():
    assert check_url("https://8.8.8.8/hook") == ("https", "8.8.8.8", 443, "8.8.8.8")
    assert check_url("http://[2001:4860:4860::8888]:8080/") == (
        "http",
        "2001:4860:4860::8888",
        8080,
        "2001:4860:4860::8888",
    )


def _loopback_only_name() -> str | None:
    """A name other than "localhost" that this machine resolves, without DNS, to loopback only."""
    for name in ("localhost.", "ip6-localhost", "ip6-loopback", socket.gethostname(), "localhost.localdomain"):
        if name.rstrip(".").lower() == "localhost":
            continue
        try:
            infos = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        addresses = {info[4][0] for info in infos}
        if addresses and all(address.startswith("127.") or address == "::1" for address in addresses):
            return name
    return None


def test_a_host_name_that_resolves_to_loopback_is_refused(httpserver, pools_opened):
    name = _loopback_only_name()
    if name is None:
        pytest.skip("no host name on this machine resolves to loopback without DNS")
    httpserver.expect_request("/").respond_with_data("should never be seen")

    with pytest.raises(UnsafeDestination, match=r"resolves to a private.*(127\.0\.0\.1|::1)"):
        http_request("GET", f"http://{name}:{httpserver.port}/", timeout=2)

    assert pools_opened == []
    assert httpserver.log == []


def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch, pools_opened):
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80)),
    ]
    monkeypatch.setattr(outbound_http.socket, "getaddrinfo", lambda *args, **kwargs: answers)

    with pytest.raises(UnsafeDestination, match=r"10\.1\.2\.3"):
        http_request("GET", "http://tracker.example/pb", timeout=2)
    assert pools_opened == []


def test_an_unresolvable_name_is_a_transport_error_not_a_crash(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(outbound_http.socket, "getaddrinfo", fail)
    with pytest.raises(TransportError, match=r"Cannot resolve tracker\.example"):
        http_request("GET", "http://tracker.example/pb", timeout=2)


def test_the_call_goes_to_the_checked_address_with_the_host_name_in_the_host_header(httpserver, monkeypatch):
    # The name resolves once; the connection uses that address, so a second DNS answer (rebinding) is never used.
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(outbound_http, "_resolve", resolve)
    monkeypatch.setattr(outbound_http, "_refused_address", lambda address: False)  # pretend loopback is public
    httpserver.expect_request("/pb").respond_with_data("ok")

    answer = http_request("GET", f"http://tracker.example:{httpserver.port}/pb?cid=1", timeout=2)

    assert (answer.status, answer.text) == (200, "ok")
    assert lookups == ["tracker.example"]
    request, _ = httpserver.log[0]
    assert request.headers["Host"] == f"tracker.example:{httpserver.port}"
    assert request.args["cid"] == "1"


def test_an_allowed_host_is_called(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    httpserver.expect_request("/leads", method="POST").respond_with_json({"ok": True}, status=201)

    answer = http_request(
        "POST", httpserver.url_for("/leads"), body=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )

    assert answer.status == 201
    assert json.loads(answer.body) == {"ok": True}
    assert answer.url == httpserver.url_for("/leads")
    request, _ = httpserver.log[0]
    assert request.get_data() == b'{"a": 1}'
    assert request.headers["User-Agent"] == "leadcrm-delivery/1.0"
    assert request.headers["Host"] == f"{httpserver.host}:{httpserver.port}"


@pytest.fixture
def ipv6_partner(settings):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server = HTTPServer(host="::1", port=0)
    server.start()
    settings.DELIVERY_ALLOWED_HOSTS = ["::1"]
    yield server
    server.clear()
    server.stop()


def test_the_host_header_of_an_ipv6_literal_with_a_port_is_bracketed(ipv6_partner):
    ipv6_partner.expect_request("/").respond_with_data("ok")

    answer = http_request("GET", f"http://[::1]:{ipv6_partner.port}/", timeout=2)

    assert answer.status == 200
    request, _ = ipv6_partner.log[0]
    assert request.headers["Host"] == f"[::1]:{ipv6_partner.port}"


# --- Redirects ---------------------------------------------------------------------------------


@pytest.fixture
def local_partner(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]  # "localhost" only; 127.0.0.1 is still refused
    return httpserver


def test_a_redirect_to_loopback_is_refused_when_following(local_partner):
    target = f"http://127.0.0.1:{local_partner.port}/x"
    local_partner.expect_request("/start").respond_with_data("", status=302, headers={"Location": target})
    local_partner.expect_request("/x").respond_with_data("internal secrets")

    with pytest.raises(UnsafeDestination, match=r"127\.0\.0\.1"):
        http_request("GET", local_partner.url_for("/start"), timeout=2, follow_redirects=True)

    assert [request.path for request, _ in local_partner.log] == ["/start"]


def test_a_redirect_is_returned_as_the_answer_when_not_following(local_partner):
    target = f"http://127.0.0.1:{local_partner.port}/x"
    local_partner.expect_request("/start").respond_with_data("", status=302, headers={"Location": target})
    local_partner.expect_request("/x").respond_with_data("internal secrets")

    answer = http_request("GET", local_partner.url_for("/start"), timeout=2)

    assert answer.status == 302
    assert answer.headers["location"] == target
    assert answer.url == local_partner.url_for("/start")
    assert [request.path for request, _ in local_partner.log] == ["/start"]
    assert judge_answer(answer).outcome == Outcome.FAILED


def test_a_303_to_the_same_host_is_followed_with_a_get(local_partner):
    local_partner.expect_request("/start", method="POST").respond_with_data(
        "", status=303, headers={"Location": "/done?ref=7"}
    )
    local_partner.expect_request("/done", method="GET").respond_with_json({"id": "B-7"})

    answer = http_request(
        "POST",
        local_partner.url_for("/start"),
        body=b"email=jo%40example.com",
        headers={"Authorization": "Bearer s3cret", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=2,
        follow_redirects=True,
    )

    assert answer.status == 200
    assert json.loads(answer.body) == {"id": "B-7"}
    assert answer.url == local_partner.url_for("/done?ref=7")
    (first, _), (second, _) = local_partner.log
    assert (first.method, first.get_data()) == ("POST", b"email=jo%40example.com")
    assert (second.method, second.get_data(), second.args["ref"]) == ("GET", b"", "7")
    assert second.headers["Authorization"] == "Bearer s3cret"  # same host: the credentials are its own


def test_a_307_keeps_the_method_and_body(local_partner):
    local_partner.expect_request("/start", method="POST").respond_with_data(
        "", status=307, headers={"Location": "/again"}
    )
    local_partner.expect_request("/again", method="POST").respond_with_data("ok")

    answer = http_request("POST", local_partner.url_for("/start"), body=b"payload", timeout=2, follow_redirects=True)

    assert answer.status == 200
    assert [(r.method, r.get_data()) for r, _ in local_partner.log] == [("POST", b"payload"), ("POST", b"payload")]


@pytest.mark.parametrize("status", [301, 308])
def test_a_moved_post_is_posted_again_to_the_new_address_not_turned_into_a_get(local_partner, status):
    local_partner.expect_request("/leads", method="POST").respond_with_data(
        "", status=status, headers={"Location": "/leads/"}
    )
    local_partner.expect_request("/leads/", method="POST").respond_with_json({"status": "accepted"})
    local_partner.expect_request("/leads/", method="GET").respond_with_json({"ok": True})

    answer = http_request("POST", local_partner.url_for("/leads"), body=b'{"email": "jo@example.com"}', timeout=2,
                          follow_redirects=True)  # fmt: skip

    assert (answer.status, json.loads(answer.body)) == (200, {"status": "accepted"})
    assert [(r.method, r.path, r.get_data()) for r, _ in local_partner.log] == [
        ("POST", "/leads", b'{"email": "jo@example.com"}'),
        ("POST", "/leads/", b'{"email": "jo@example.com"}'),
    ]


def test_a_302_after_a_post_is_read_with_a_get_as_a_form_that_took_the_lead_answers(local_partner):
    local_partner.expect_request("/leads", method="POST").respond_with_data(
        "", status=302, headers={"Location": "/thanks"}
    )
    local_partner.expect_request("/thanks", method="GET").respond_with_data("Thank you")

    answer = http_request("POST", local_partner.url_for("/leads"), body=b"email=jo%40example.com", timeout=2,
                          follow_redirects=True)  # fmt: skip

    assert (answer.status, answer.body) == (200, b"Thank you")
    assert [(r.method, r.path, r.get_data()) for r, _ in local_partner.log] == [
        ("POST", "/leads", b"email=jo%40example.com"),
        ("GET", "/thanks", b""),
    ]


@pytest.mark.parametrize("status", [301, 308])
def test_a_moved_post_to_another_host_is_refused_rather_than_re_posting_the_lead(settings, httpserver, status):
    settings.DELIVERY_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    other_host = f"http://127.0.0.1:{httpserver.port}/elsewhere"
    httpserver.expect_request("/start").respond_with_data("", status=status, headers={"Location": other_host})

    with pytest.raises(UnsafeDestination, match="re-send the body"):
        http_request("POST", f"http://localhost:{httpserver.port}/start", body=b"{}", timeout=2, follow_redirects=True)

    assert [request.path for request, _ in httpserver.log] == ["/start"]


def test_a_redirect_to_another_host_drops_every_header_we_set(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    other_host = f"http://127.0.0.1:{httpserver.port}/elsewhere"
    httpserver.expect_request("/start").respond_with_data("", status=302, headers={"Location": other_host})
    httpserver.expect_request("/elsewhere").respond_with_data("ok")

    answer = http_request(
        "GET",
        f"http://localhost:{httpserver.port}/start",
        headers={"Authorization": "Bearer s3cret", "X-Api-Key": "k-1", "webhook-signature": "v1,abc"},
        timeout=2,
        follow_redirects=True,
    )

    assert answer.status == 200
    (first, _), (second, _) = httpserver.log
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert second.headers["Host"] == f"127.0.0.1:{httpserver.port}"
    for name in ("Authorization", "X-Api-Key", "webhook-signature"):
        assert name not in second.headers  # credentials and signatures stay with their origin


def test_a_307_to_another_host_is_refused_rather_than_re_posting_the_lead(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    other_host = f"http://127.0.0.1:{httpserver.port}/elsewhere"
    httpserver.expect_request("/start").respond_with_data("", status=307, headers={"Location": other_host})

    with pytest.raises(UnsafeDestination, match="re-send the body"):
        http_request("POST", f"http://localhost:{httpserver.port}/start", body=b"{}", timeout=2, follow_redirects=True)

    assert [request.path for request, _ in httpserver.log] == ["/start"]


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::1",
        "2002:a00:1::",
        "2002:7f00:1::1",
        "::7f00:1",
        "::a00:1",
        "::ffff:0:7f00:1",
        "::ffff:0:a9fe:a9fe",
    ],
    ids=[
        "nat64-10",
        "nat64-loopback",
        "local-nat64",
        "6to4-10",
        "6to4-loopback",
        "v4compat-loopback",
        "v4compat-10",
        "siit-loopback",
        "siit-metadata",
    ],
)
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_refused(address):
    with pytest.raises(UnsafeDestination):
        check_url(f"http://[{address}]/")


def test_a_nat64_form_of_a_public_address_is_allowed_to_resolve():
    assert check_url("http://[64:ff9b::808:808]/")[3] == "64:ff9b::808:808"  # 8.8.8.8


def test_too_many_redirects_are_a_transport_error(local_partner):
    local_partner.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})

    with pytest.raises(TransportError, match="redirects"):
        http_request("GET", local_partner.url_for("/loop"), timeout=2, follow_redirects=True)

    assert len(local_partner.log) == MAX_REDIRECTS + 1


class _FakeResponse:
    def __init__(self, status, headers):
        self.status, self.headers = status, headers

    def read1(self, amount):
        return b""

    def release_conn(self):
        pass

    def close(self):
        pass


class _FakePool:
    """Stands in for urllib3's pool: records what would be sent and answers from a script."""

    def __init__(self, sent, script, scheme, host, port):
        self.sent, self.script, self.origin = sent, script, f"{scheme}://{host}:{port}"

    def urlopen(self, method, path, headers, **kwargs):
        self.sent.append((self.origin + path, dict(headers)))
        return self.script.pop(0)

    def close(self):
        pass


def test_a_redirect_from_https_to_http_on_the_same_host_drops_the_authorization_header(settings, monkeypatch):
    # TLS to a local server would need a trusted certificate; the pool is faked, the logic under test is not.
    settings.DELIVERY_ALLOWED_HOSTS = ["buyer.example"]
    sent = []
    script = [
        _FakeResponse(302, {"Location": "http://buyer.example/leads"}),
        _FakeResponse(200, {}),
    ]
    monkeypatch.setattr(
        outbound_http,
        "_pool",
        lambda scheme, host, port, address: _FakePool(sent, script, scheme, host, port),
    )

    http_request(
        "GET", "https://buyer.example/leads", headers={"Authorization": "Bearer s3cret"}, follow_redirects=True
    )

    assert [url for url, _ in sent] == ["https://buyer.example:443/leads", "http://buyer.example:80/leads"]
    assert "Authorization" not in sent[1][1]


def test_a_post_moved_from_http_to_https_on_the_same_host_is_posted_again_with_its_headers(settings, monkeypatch):
    settings.DELIVERY_ALLOWED_HOSTS = ["buyer.example"]
    sent, bodies = [], []
    script = [_FakeResponse(301, {"Location": "https://buyer.example/leads"}), _FakeResponse(200, {})]

    class RecordingPool(_FakePool):
        def urlopen(self, method, path, headers, **kwargs):
            bodies.append((method, kwargs["body"]))
            return super().urlopen(method, path, headers, **kwargs)

    monkeypatch.setattr(
        outbound_http, "_pool", lambda scheme, host, port, address: RecordingPool(sent, script, scheme, host, port)
    )

    answer = http_request("POST", "http://buyer.example/leads", body=b"{}", headers={"Authorization": "Bearer s3cret"},
                          follow_redirects=True)  # fmt: skip

    assert answer.status == 200
    assert [url for url, _ in sent] == ["http://buyer.example:80/leads", "https://buyer.example:443/leads"]
    assert bodies == [("POST", b"{}"), ("POST", b"{}")]
    assert sent[1][1]["Authorization"] == "Bearer s3cret"  # its own site, now encrypted


# --- Timeouts ----------------------------------------------------------------------------------


def test_a_server_that_answers_after_the_timeout_is_a_transport_error(local_partner):
    def slow(request):
        time.sleep(1.0)
        return Response("too late")

    local_partner.expect_request("/slow").respond_with_handler(slow)

    started = time.monotonic()
    with pytest.raises(TransportError, match=r"(?i)timeout|timed out"):
        http_request("GET", local_partner.url_for("/slow"), timeout=0.3)
    assert time.monotonic() - started < 0.9


def test_a_refused_connection_is_a_transport_error(settings):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]

    with pytest.raises(TransportError):
        http_request("GET", f"http://127.0.0.1:{port}/", timeout=1)


@pytest.fixture
def dripping_server():
    """A raw HTTP server that announces a large body and then sends it one byte every 0.1 s for 2 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def serve():
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: text/plain\r\n\r\n")
                for _ in range(20):
                    connection.sendall(b"x")
                    time.sleep(0.1)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=5)


def test_a_server_that_drips_its_answer_does_not_hold_the_call_past_the_deadline(settings, dripping_server):
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.DELIVERY_CONNECT_TIMEOUT = 0.2

    started = time.monotonic()
    with contextlib.suppress(TransportError):  # a cut-short answer or a transport error: what matters is the time
        http_request("GET", f"http://127.0.0.1:{dripping_server}/", timeout=0.5)
    assert time.monotonic() - started < 1.5  # deadline: timeout + connect timeout = 0.7 s


# --- Judging answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_is_accepted(status):
    verdict = judge_answer(_answer(status, b"anything, not json"))
    assert (verdict.outcome, verdict.reason, verdict.disable_destination) == (Outcome.ACCEPTED, "", False)


def test_the_buyers_reference_is_read_from_its_json_path():
    verdict = judge_answer(_answer(200, {"data": {"lead_id": 123}}), reference_path="data.lead_id")
    assert (verdict.outcome, verdict.reference) == (Outcome.ACCEPTED, "123")


@pytest.mark.parametrize(
    ("body", "outcome", "reason"),
    [
        ({"result": {"accepted": True}}, Outcome.ACCEPTED, ""),
        ({"result": {"accepted": "TRUE"}}, Outcome.ACCEPTED, ""),  # compared as text, case-insensitive
        ({"result": {"accepted": False}, "why": "duplicate"}, Outcome.REJECTED, "duplicate"),
        ({"result": {"accepted": False}}, Outcome.REJECTED, "result.accepted is false, not true"),
        ({"result": {}}, Outcome.REJECTED, "result.accepted is missing, not true"),
        (b"<html>ok</html>", Outcome.REJECTED, "result.accepted is missing, not true"),
    ],
)
def test_the_accept_rule_decides_on_a_2xx(body, outcome, reason):
    verdict = judge_answer(_answer(200, body), accept_path="result.accepted", accept_value="true", reason_path="why")
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


def test_an_accept_path_without_a_value_needs_the_field_present():
    assert judge_answer(_answer(200, {"id": 0}), accept_path="id").outcome == Outcome.ACCEPTED
    assert judge_answer(_answer(200, {"other": 1}), accept_path="id").outcome == Outcome.REJECTED


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_timeouts_throttling_and_server_errors_are_retried(status):
    verdict = judge_answer(_answer(status, b"busy"))
    assert (verdict.outcome, verdict.reason, verdict.retry_after) == (Outcome.RETRY, f"HTTP {status}", None)


def test_retry_after_in_seconds_is_honoured_and_capped():
    assert judge_answer(_answer(429, headers={"retry-after": "120"})).retry_after == 120.0
    assert judge_answer(_answer(503, headers={"retry-after": " 7 "})).retry_after == 7.0
    assert judge_answer(_answer(503, headers={"retry-after": "9999999"})).retry_after == MAX_RETRY_AFTER


def test_retry_after_as_an_http_date_is_honoured():
    later = format_datetime(timezone.now() + timedelta(seconds=90), usegmt=True)
    past = format_datetime(timezone.now() - timedelta(hours=1), usegmt=True)

    assert 85 <= judge_answer(_answer(503, headers={"retry-after": later})).retry_after <= 91
    assert judge_answer(_answer(503, headers={"retry-after": past})).retry_after == 1.0
    assert judge_answer(_answer(503, headers={"retry-after": "soon"})).retry_after is None


def test_retry_after_in_the_asctime_date_form_does_not_crash():
    verdict = judge_answer(_answer(503, headers={"retry-after": "Sun Nov  6 08:49:37 1994"}))
    assert (verdict.outcome, verdict.retry_after) == (Outcome.RETRY, 1.0)


def test_410_gone_fails_and_disables_the_destination():
    verdict = judge_answer(_answer(410))
    assert (verdict.outcome, verdict.disable_destination) == (Outcome.FAILED, True)
    assert "410" in verdict.reason


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_that_was_not_followed_is_failed(status):
    verdict = judge_answer(_answer(status, headers={"location": "https://elsewhere.example/x"}))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.reason == f"HTTP {status} redirect to https://elsewhere.example/x not followed"
    assert verdict.disable_destination is False


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_auth_and_not_found_errors_are_failed_not_rejected(status):
    verdict = judge_answer(_answer(status, {"error": "nope"}), reason_path="error")
    assert verdict.outcome == Outcome.FAILED
    assert verdict.reason == f"HTTP {status}: check the destination's URL and credentials"


@pytest.mark.parametrize("status", [400, 409, 422])
def test_other_4xx_are_rejections_with_the_reason_from_the_json_path(status):
    body = {"errors": [{"message": "phone is required"}]}
    verdict = judge_answer(_answer(status, body), reason_path="errors.0.message")
    assert (verdict.outcome, verdict.reason) == (Outcome.REJECTED, "phone is required")


def test_a_rejection_without_a_json_reason_quotes_the_answer():
    verdict = judge_answer(_answer(422, b"bad zip code"), reason_path="errors.0.message")
    assert (verdict.outcome, verdict.reason) == (Outcome.REJECTED, "HTTP 422: bad zip code")


# --- Retry schedule ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", range(1, len(RETRY_DELAYS) + 1))
def test_retry_delay_follows_the_schedule_within_ten_percent(attempts):
    base = RETRY_DELAYS[attempts - 1]
    delays = [retry_delay(attempts=attempts) for _ in range(200)]
    assert all(0.9 * base <= delay <= 1.1 * base for delay in delays)
    assert len(set(delays)) > 1  # jittered, so one outage's retries do not all land at once


def test_retry_delay_gives_up_after_the_last_scheduled_retry():
    assert retry_delay(attempts=len(RETRY_DELAYS)) is not None
    assert retry_delay(attempts=len(RETRY_DELAYS) + 1) is None
    assert retry_delay(attempts=len(RETRY_DELAYS) + 1, retry_after=30) is None


def test_retry_delay_uses_the_servers_retry_after_with_a_floor_of_one_second():
    assert retry_delay(attempts=1, retry_after=42.0) == 42.0
    assert retry_delay(attempts=3, retry_after=0.0) == 1.0
