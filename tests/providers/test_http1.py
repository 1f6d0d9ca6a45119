"""The lean HTTP/1.1 client the openai_compat provider relays through (providers/http1.py),
against a real loopback server whose answers each test scripts byte by byte: connections
are reused and replaced as they should be, every body framing is read, and every way an
origin can fail ends in the right error instead of a hang or a wrong answer."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from aiport.providers.http1 import HTTPTransportError, LeanHTTPClient

Answer = Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]  # False: stop serving this connection


class Origin:
    """A loopback HTTP server that counts connections and requests; `answer` writes each reply."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line, headers, body))
                if not await self.answer(writer, body):
                    return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def reply(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


def chunked(*pieces: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    for piece in pieces:
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def fixed(data: bytes, *, keep: bool = True) -> Answer:
    async def answer(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return answer


Serve = Callable[..., Awaitable[tuple["Origin", LeanHTTPClient]]]  # (answer, read_timeout=2.0)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    made: list[tuple[Origin, LeanHTTPClient]] = []

    async def make(answer: Answer, read_timeout: float = 2.0) -> tuple[Origin, LeanHTTPClient]:
        origin = Origin(answer)
        url = await origin.start()
        client = LeanHTTPClient(
            url, {"authorization": "Bearer sk-test"}, connect_timeout=2.0, read_timeout=read_timeout
        )
        made.append((origin, client))
        return origin, client

    yield make
    for origin, client in made:
        await client.aclose()
        await origin.stop()


async def post(client: LeanHTTPClient, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    async with client.post("/chat/completions", body) as response:
        return response.status, dict(response.headers), await response.read()


async def test_request_line_headers_and_body_reach_the_origin_and_the_answer_comes_back(serve: Serve) -> None:
    origin, client = await serve(
        fixed(reply(b'{"ok":1}', extra="x-request-id: r1\r\nset-cookie: a\r\nset-cookie: b\r\n"))
    )
    status, headers, body = await post(client, b'{"model":"m"}')
    assert (status, body) == (200, b'{"ok":1}')
    assert headers["x-request-id"] == "r1" and headers["set-cookie"] == "a, b"
    line, sent, received = origin.requests[0]
    assert line == "POST /v1/chat/completions HTTP/1.1"
    assert sent["host"].startswith("127.0.0.1:") and sent["authorization"] == "Bearer sk-test"
    assert (sent["content-length"], received) == ("13", b'{"model":"m"}')


async def test_kept_alive_connection_is_reused_and_concurrent_calls_open_their_own(serve: Serve) -> None:
    async def slow(writer: asyncio.StreamWriter, body: bytes) -> bool:
        await asyncio.sleep(0.05)
        writer.write(reply(body))
        return True

    origin, client = await serve(slow)
    for i in range(5):
        assert (await post(client, str(i).encode()))[2] == str(i).encode()
    assert origin.connections == 1
    answers = await asyncio.gather(*(post(client, str(i).encode()) for i in range(8)))
    assert [a[2] for a in answers] == [str(i).encode() for i in range(8)]
    assert origin.connections == 8  # the first one reused, seven more for the overlap
    await asyncio.gather(*(post(client) for _ in range(8)))
    assert origin.connections == 8


async def test_chunked_gzip_and_until_close_bodies_are_read_whole(serve: Serve) -> None:
    _, client = await serve(fixed(chunked(b"ab", b"c" * 70_000, b"d")))
    assert (await post(client))[2] == b"ab" + b"c" * 70_000 + b"d"

    packed = gzip.compress(b'{"text":"' + "가나다".encode() * 1000 + b'"}')
    _, client = await serve(fixed(reply(packed, extra="content-encoding: gzip\r\n")))
    assert (await post(client))[2] == b'{"text":"' + "가나다".encode() * 1000 + b'"}'

    origin, client = await serve(fixed(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", keep=False))
    assert (await post(client))[2] == b"until the end"
    assert (await post(client))[2] == b"until the end"
    assert origin.connections == 2  # an HTTP/1.0 answer is never reused


async def test_a_body_larger_than_the_read_buffer_pauses_the_socket_and_arrives_intact(serve: Serve) -> None:
    big = bytes(range(256)) * 20_000  # 5 MB, past the 1 MB high-water mark
    _, client = await serve(fixed(reply(big)))
    async with client.post("/chat/completions", b"{}") as response:
        await asyncio.sleep(0.2)  # let the origin fill our buffer before we read
        assert await response.read() == big


async def test_sse_lines_are_split_across_chunks_and_an_overlong_line_is_refused(serve: Serve) -> None:
    _, client = await serve(fixed(chunked(b'data: {"a"', b":1}\n\nda", b"ta: [DONE]\n\n")))
    async with client.post("/chat/completions", b"{}") as response:
        lines = [line async for line in response.lines(1024)]
    assert lines == [b'data: {"a":1}', b"", b"data: [DONE]", b""]

    _, client = await serve(fixed(chunked(b"data: " + b"x" * 5000)))
    with pytest.raises(HTTPTransportError, match="line longer than 1,024 bytes"):
        async with client.post("/chat/completions", b"{}") as response:
            async for _ in response.lines(1024):
                pass


async def test_a_stream_left_at_done_is_drained_so_its_connection_is_reused(serve: Serve) -> None:
    async def done_then_terminator(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(chunked(b"data: [DONE]\n\n")[:-5])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    origin, client = await serve(done_then_terminator)
    for _ in range(3):
        async with client.post("/chat/completions", b"{}") as response:
            async for line in response.lines(1024):
                if line == b"data: [DONE]":
                    break
    assert origin.connections == 1


async def test_an_abandoned_body_closes_its_connection_instead_of_reusing_it(serve: Serve) -> None:
    async def never_ends(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n")
        return True

    origin, client = await serve(never_ends)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            async with client.post("/chat/completions", b"{}") as response:
                async for _ in response.lines(100):
                    raise RuntimeError("the caller went away")
    assert origin.connections == 2


async def test_a_kept_alive_connection_the_origin_closed_is_replaced_without_an_error(serve: Serve) -> None:
    origin, client = await serve(fixed(reply(b"ok"), keep=False))  # closes after each answer, without saying so
    for _ in range(3):
        assert (await post(client))[2] == b"ok"
    assert origin.connections == 3
    assert len(origin.requests) == 3  # each request reached the origin once


async def test_connection_close_answers_are_not_reused(serve: Serve) -> None:
    origin, client = await serve(fixed(reply(b"ok", extra="connection: close\r\n")))
    await post(client)
    await post(client)
    assert origin.connections == 2


async def test_an_interim_103_answer_is_skipped(serve: Serve) -> None:
    _, client = await serve(
        fixed(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + reply(b"final", status="201 Created"))
    )
    status, headers, body = await post(client)
    assert (status, body) == (201, b"final") and "link" not in headers


async def test_an_origin_that_goes_silent_times_out_after_the_read_timeout(serve: Serve) -> None:
    async def silent(writer: asyncio.StreamWriter, body: bytes) -> bool:
        await asyncio.sleep(10)
        return False

    _, client = await serve(silent, read_timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"no data from the server for 0\.3 s"):
        await post(client)
    assert 0.25 < time.perf_counter() - started < 2


async def test_the_read_timeout_is_between_reads_so_a_slow_steady_stream_lives(serve: Serve) -> None:
    async def trickle(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(6):
            await asyncio.sleep(0.1)
            writer.write(b"3\r\nab\n\r\n")
        writer.write(b"0\r\n\r\n")
        return True

    _, client = await serve(trickle, read_timeout=0.3)
    async with client.post("/chat/completions", b"{}") as response:
        assert [line async for line in response.lines(100)] == [b"ab"] * 6


async def test_a_connection_cut_mid_answer_is_an_error_not_a_short_body(serve: Serve) -> None:
    _, client = await serve(fixed(reply(b"0123456789")[:-4], keep=False))
    with pytest.raises(HTTPTransportError, match="closed the connection before it finished"):
        await post(client)


async def test_a_malformed_answer_is_an_error(serve: Serve) -> None:
    _, client = await serve(fixed(b"SMTP ready\r\n\r\n", keep=False))
    with pytest.raises(HTTPTransportError, match="malformed HTTP answer"):
        await post(client)


async def test_refused_and_unresolvable_origins_fail_fast_with_the_address() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = LeanHTTPClient(f"http://127.0.0.1:{port}", {}, connect_timeout=2, read_timeout=2)
    with pytest.raises(HTTPTransportError, match=rf"could not connect to 127\.0\.0\.1:{port}"):
        await post(client)
    client = LeanHTTPClient("http://no-such-host.invalid", {}, connect_timeout=2, read_timeout=2)
    with pytest.raises(HTTPTransportError, match=r"could not connect to no-such-host\.invalid:80"):
        await post(client)


def test_only_http_urls_are_taken() -> None:
    with pytest.raises(ValueError, match="not an http"):
        LeanHTTPClient("unix:///tmp/sock", {}, connect_timeout=1, read_timeout=1)


async def test_each_event_loop_gets_its_own_connections(serve: Serve) -> None:
    """A Celery worker runs each job on a fresh loop: a kept-alive connection of another
    loop must not be used there."""
    origin, client = await serve(fixed(reply(b"ok")))
    assert (await post(client))[2] == b"ok"
    other_loop = await asyncio.to_thread(asyncio.run, post(client))
    assert other_loop[2] == b"ok" and origin.connections == 2
    assert (await post(client))[2] == b"ok" and origin.connections == 3


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_verifies_the_certificate_and_relays_over_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    origin = Origin(fixed(reply(b"secret")))
    url = await origin.start(server_side)
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        client = LeanHTTPClient(url, {}, connect_timeout=2, read_timeout=2, ssl_context=trusting)
        assert (await post(client))[2] == b"secret"
        assert (await post(client))[2] == b"secret"
        assert origin.connections == 1
        await client.aclose()

        default = LeanHTTPClient(url, {}, connect_timeout=2, read_timeout=2)  # the system's CAs only
        with pytest.raises(HTTPTransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(default)
    finally:
        await origin.stop()
