"""Request bodies through the real server process (uvicorn serving ``neurox_site.asgi``, as in production), not
the test client: a 200 MB upload streams through without the server's memory growing with it, and the request
guard (``neurox_site/request_guard.py``) answers oversized and anonymous large bodies before receiving them.

The client is a plain socket, so a test can send the headers, read the answer, and only then (maybe) the body.
Bodies are generated on the fly: the same 1 MiB block of zeros, sent again and again.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import psutil
import pytest
from django.conf import settings
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from accounts.services import create_token
from neurox_site.request_guard import ANONYMOUS_BODY_BYTES, FORM_OVERHEAD_BYTES, body_limit
from projects.models import ModelUpload
from tests.e2e.server import ServerProcess

MiB = 1024 * 1024
BLOCK = bytes(MiB)
BOUNDARY = "neurox-test-boundary"
MODELS_API = "/api/v1/uploads/models/"
MODEL_FORM = "/projects/library/model/new/"
CONFIG = json.dumps({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1}).encode()
# The small limit of the second server, for cutting off a chunked body without sending gigabytes.
SMALL_UPLOAD_LIMIT = 1 * MiB
CSRF_SECRET = "c" * 32  # a valid unmasked CSRF secret (32 letters)


@pytest.fixture(scope="module")
def small_limit_server(django_db_setup, tmp_path_factory):
    """A second server whose upload limit is 1 MiB (its body limit: 1 MiB plus the form overhead)."""
    from django.db import connections

    server = ServerProcess(str(connections["default"].settings_dict["NAME"]), tmp_path_factory.mktemp("small"),
                           env={"NEUROX_MAX_UPLOAD_BYTES": str(SMALL_UPLOAD_LIMIT)})
    yield server
    server.stop()


@pytest.fixture
def signed_in(transactional_db, make_user):
    """A user (committed, so the server sees it) and the headers of a request from them: by token or session."""
    user = make_user(username="uploader")
    _, secret = create_token(user, "streaming tests")
    browser = Client()
    browser.force_login(user)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return {
        "user": user,
        "token": {"Authorization": f"Token {secret}"},
        # DRF checks CSRF for a session, as Django does for forms: cookie and header carry the same secret.
        "session": {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={CSRF_SECRET}",
                    "X-CSRFToken": CSRF_SECRET},
    }


# ---------------------------------------------------------------------------------------------- the client


def multipart_upload(weights_bytes: int) -> tuple[int, object]:
    """A model upload form (config.json and a ``weights_bytes`` model.safetensors of zeros): its length and a
    generator of its bytes. The weights are not valid safetensors, so the upload code refuses them after
    receiving them whole."""
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"config.json\"\r\n"
        f"Content-Type: application/json\r\n\r\n"
    ).encode() + CONFIG + (
        f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"model.safetensors\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks():
        yield head
        left = weights_bytes
        while left:
            piece = BLOCK if left >= MiB else BLOCK[:left]
            yield piece
            left -= len(piece)
        yield tail

    return len(head) + weights_bytes + len(tail), chunks()


def zeros(total: int):
    for start in range(0, total, MiB):
        yield BLOCK[: min(MiB, total - start)]


def send_headers(server, path: str, headers: dict[str, str]) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=60)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return connection


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()


def form_headers(length: int, extra: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(length),
            "Referer": "http://127.0.0.1/", **extra}


class PeakMemory:
    """Samples a process's resident memory every few milliseconds while in use; ``rise`` is the peak over the
    value at the start, in bytes."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = self.start = self.process.memory_info().rss
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._done.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self):
        self._sampler.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._sampler.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def rise(self) -> int:
        return self.peak - self.start


def upload(server, path: str, weights_bytes: int, headers: dict[str, str]):
    """Send a whole multipart model upload, then read the answer."""
    length, body = multipart_upload(weights_bytes)
    with send_headers(server, path, form_headers(length, headers)) as connection:
        for chunk in body:
            connection.sendall(chunk)
        return read_response(connection)


def answer_before_body(server, path: str, headers: dict[str, str]):
    """Send only the headers of a request that announces a body, and read the answer: it can only come from a
    server that decided without the body."""
    with send_headers(server, path, headers) as connection:
        return read_response(connection)


def send_chunked_while_reading(server, path: str, headers: dict[str, str], total: int):
    """Stream ``total`` bytes as a chunked body (no Content-Length) from another thread while this one reads the
    answer; returns the answer and how many body bytes were sent before the server stopped taking them."""
    connection = send_headers(server, path, {**headers, "Transfer-Encoding": "chunked"})
    sent = 0

    def stream():
        nonlocal sent
        try:
            for chunk in zeros(total):
                connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed the connection: that is the point

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    with connection:
        answer = read_response(connection)
        sender.join(timeout=60)
    return answer, sent


@pytest.fixture
def stored_since_start(transactional_db):
    """What the test stored: model rows and media files that were not there when it began (earlier tests of the
    session may have left files in the shared media folder)."""
    media = Path(settings.MEDIA_ROOT)

    def files() -> set[Path]:
        return {p for p in media.rglob("*") if p.is_file()} if media.exists() else set()

    rows, before = ModelUpload.objects.count(), files()
    return lambda: (ModelUpload.objects.count() - rows, sorted(files() - before))


# ---------------------------------------------------------------------------------------------- memory


@pytest.mark.slow
def test_a_200_mb_upload_streams_through_to_the_upload_code_without_the_server_memory_growing(asgi_server, signed_in,
                                                                                              stored_since_start):
    # Warm up: the same request, small, so that the code it runs (and what it imports) is loaded before measuring.
    status, _, body = upload(asgi_server, MODELS_API, 2 * MiB, signed_in["token"])
    assert status == 400, body

    with PeakMemory(asgi_server.process.pid) as memory:
        status, _, body = upload(asgi_server, MODELS_API, 200 * MiB, signed_in["token"])

    # It reached the upload code, which read the whole file and refused what it found inside.
    assert status == 400, body
    refusal = json.loads(body)
    assert refusal["code"] == "model" and "model.safetensors" in refusal["detail"], refusal
    assert memory.rise < 64 * MiB, f"the server's memory rose by {memory.rise / MiB:.0f} MiB"
    assert stored_since_start() == (0, [])


@pytest.mark.slow
def test_an_anonymous_200_mb_upload_is_answered_401_before_its_body_and_the_body_is_not_taken(asgi_server,
                                                                                              transactional_db,
                                                                                              stored_since_start):
    length, body = multipart_upload(200 * MiB)
    with PeakMemory(asgi_server.process.pid) as memory:
        with send_headers(asgi_server, MODELS_API, form_headers(length, {})) as connection:
            status, headers, answer = read_response(connection)  # not one byte of the body was sent
            sent = 0
            with pytest.raises(OSError):  # the server closed the connection: the body has nowhere to go
                for chunk in body:
                    connection.sendall(chunk)
                    sent += len(chunk)

    assert status == 401
    assert headers["www-authenticate"] == "Token" and headers["connection"] == "close"
    assert json.loads(answer) == {
        "detail": "Authentication credentials were not provided: sign in or send an API token to send more than "
                  "1,048,576 bytes.",
        "code": "not_authenticated",
    }
    assert sent < 64 * MiB  # what the socket buffers took before the reset
    assert memory.rise < 64 * MiB, f"the server's memory rose by {memory.rise / MiB:.0f} MiB"
    assert stored_since_start() == (0, [])


# ---------------------------------------------------------------------------------------------- the guard


def test_a_declared_length_over_the_upload_limit_is_answered_413_before_the_body(asgi_server, signed_in,
                                                                                 stored_since_start):
    limit = body_limit()
    status, headers, answer = answer_before_body(asgi_server, MODELS_API, form_headers(limit + 1, signed_in["token"]))

    assert status == 413 and headers["connection"] == "close"
    assert json.loads(answer) == {"detail": f"This request body is over the limit of {limit:,} bytes.",
                                  "code": "too_large"}
    assert stored_since_start() == (0, [])


def test_a_form_post_over_the_upload_limit_gets_a_page_saying_so(asgi_server, signed_in):
    limit = body_limit()
    status, headers, answer = answer_before_body(asgi_server, MODEL_FORM, form_headers(limit + 1, signed_in["session"]))

    assert status == 413 and headers["content-type"].startswith("text/html")
    assert f"This request body is over the limit of {limit:,} bytes." in answer.decode()


@pytest.mark.parametrize("credentials", ["none", "bad token", "inactive user's session"])
def test_a_body_over_1_mib_without_valid_credentials_is_answered_401_before_the_body(asgi_server, signed_in,
                                                                                     credentials):
    headers = {
        "none": {},
        "bad token": {"Authorization": "Token nx_not-a-real-token"},
        # The session of a user who was deactivated since: Django would not sign them in either.
        "inactive user's session": signed_in["session"],
    }[credentials]
    if credentials == "inactive user's session":
        signed_in["user"].is_active = False
        signed_in["user"].save(update_fields=["is_active"])

    status, _, answer = answer_before_body(asgi_server, MODELS_API, form_headers(ANONYMOUS_BODY_BYTES + 1, headers))

    assert status == 401
    assert json.loads(answer)["code"] == "not_authenticated"


def test_an_anonymous_form_post_over_1_mib_is_sent_to_sign_in_before_the_body(asgi_server, transactional_db):
    status, headers, _ = answer_before_body(asgi_server, MODEL_FORM, form_headers(ANONYMOUS_BODY_BYTES + 1, {}))

    assert status == 302
    assert headers["location"] == f"/accounts/login/?next={MODEL_FORM}"


@pytest.mark.parametrize("credentials", ["token", "session"])
def test_a_signed_in_upload_over_1_mib_reaches_the_upload_code(asgi_server, signed_in, credentials):
    status, _, answer = upload(asgi_server, MODELS_API, 2 * MiB, signed_in[credentials])

    assert status == 400, answer
    assert json.loads(answer)["code"] == "model"


def test_small_anonymous_posts_still_reach_django(asgi_server, signed_in, password):
    """Public forms (sign-in, sign-up, password reset) are small: the guard lets them through; here a sign-in."""
    form = urlencode({"username": "uploader", "password": password, "csrfmiddlewaretoken": CSRF_SECRET}).encode()
    with send_headers(asgi_server, "/accounts/login/", {
        "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(form)),
        "Cookie": f"{settings.CSRF_COOKIE_NAME}={CSRF_SECRET}",
    }) as connection:
        connection.sendall(form)
        status, headers, answer = read_response(connection)

    assert status == 302, answer
    assert headers["location"] == "/"
    assert f"{settings.SESSION_COOKIE_NAME}=" in headers["set-cookie"]


def test_a_chunked_body_is_cut_off_once_over_the_limit(small_limit_server, signed_in, stored_since_start):
    limit = SMALL_UPLOAD_LIMIT + FORM_OVERHEAD_BYTES
    (status, _, answer), sent = send_chunked_while_reading(
        small_limit_server, MODELS_API, {"Content-Type": "application/octet-stream", **signed_in["token"]},
        total=limit + 64 * MiB,
    )

    assert status == 413, answer
    assert json.loads(answer) == {"detail": f"This request body is over the limit of {limit:,} bytes.",
                                  "code": "too_large"}
    assert sent < limit + 32 * MiB
    assert stored_since_start() == (0, [])


@pytest.mark.parametrize("content_length", [None, "10"])
def test_an_anonymous_chunked_body_is_cut_off_after_1_mib(small_limit_server, transactional_db, content_length):
    # With both headers the server reads the body as chunked (as HTTP says): a small Content-Length must not let it
    # through uncounted.
    headers = {"Content-Type": "application/octet-stream"}
    if content_length:
        headers["Content-Length"] = content_length
    (status, _, answer), sent = send_chunked_while_reading(small_limit_server, MODELS_API, headers, total=64 * MiB)

    assert status == 401, answer
    assert json.loads(answer)["code"] == "not_authenticated"
    assert sent < 32 * MiB


# ---------------------------------------------------------------------------------------------- websockets


def test_websocket_handshakes_reach_channels_through_the_server(asgi_server, transactional_db):
    url = asgi_server.url.replace("http://", "ws://") + "/ws/not-routed/"
    # A foreign origin is refused by Channels' origin check (a plain HTTP server would answer 404 or 400).
    with pytest.raises(InvalidStatus) as refused:
        websocket_connect(url, origin="http://evil.example", open_timeout=30)
    assert refused.value.response.status_code == 403

    # From the site's own origin (port included) the handshake passes the origin check and the session middleware
    # and reaches Channels' URL router, which has no route for it.
    with pytest.raises(InvalidStatus):
        websocket_connect(url, origin=asgi_server.url, open_timeout=30)
    deadline = time.monotonic() + 10
    while "No route found for path 'ws/not-routed/'" not in asgi_server.log(tail=100_000):
        assert time.monotonic() < deadline, asgi_server.log()
        time.sleep(0.1)
