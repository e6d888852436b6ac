"""A small synchronous HTTP client over the `wasi:http@0.2` bindings that
componentize-py generates: one request, the whole (bounded) response. Shared
by the Python handlers (gitlab, vault): scripts/build-plugins-python.sh puts
it beside each one's sources.

componentize-py's own examples drive wasi:http from an asyncio loop
(`poll_loop`); a handler sends a few requests one after another, so this
blocks on each `pollable` instead. Every resource is dropped (`with`) before
its parent, as the component model requires.

The request body is written and finished *before* the request is handed to
`outgoing-handler.handle`: it is small (one write of at most 4096 bytes, which
Wasmtime buffers), it goes out with its Content-Length, and nothing is left
to flush after the server has its last byte.
"""

from typing import List, Optional, Tuple
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed, StreamError_LastOperationFailed
from wit_world.imports.wasi_http_types import (
    Fields,
    Method_Delete,
    Method_Get,
    Method_Post,
    Method_Put,
    OutgoingBody,
    OutgoingRequest,
    RequestOptions,
    Scheme_Http,
    Scheme_Https,
    http_error_code,
)

from http_types import Response, TransportError

_METHODS = {"GET": Method_Get, "POST": Method_Post, "PUT": Method_Put, "DELETE": Method_Delete}
_SECOND_NS = 1_000_000_000
# keyrot caps these too; asking keeps the plugin honest on other hosts.
CONNECT_TIMEOUT_NS = 10 * _SECOND_NS
RESPONSE_TIMEOUT_NS = 30 * _SECOND_NS
# The most a body may be: one blocking write.
MAX_REQUEST_BYTES = 4096
# A handler's API answers are small; anything bigger is not that API.
MAX_RESPONSE_BYTES = 1024 * 1024


def send(method: str, url: str, headers: List[Tuple[str, str]],
         body: Optional[bytes] = None) -> Response:
    """Sends one request and reads the whole response. Raises TransportError
    when there is no HTTP answer (the code names the wasi:http error)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TransportError("HttpRequestUriInvalid", f"unsupported scheme in {url!r}")
    if body is not None and len(body) > MAX_REQUEST_BYTES:
        raise TransportError("HttpRequestBodySize", f"more than {MAX_REQUEST_BYTES} bytes")

    try:
        request = OutgoingRequest(Fields.from_list([(n, v.encode()) for n, v in headers]))
        request.set_method(_METHODS[method]())
        request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
        request.set_authority(parts.netloc)
        request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
        if body is not None:
            outgoing = request.body()
            with outgoing.write() as stream:
                stream.blocking_write_and_flush(body)
            OutgoingBody.finish(outgoing, None)
        options = RequestOptions()
        options.set_connect_timeout(CONNECT_TIMEOUT_NS)
        options.set_first_byte_timeout(RESPONSE_TIMEOUT_NS)
        options.set_between_bytes_timeout(RESPONSE_TIMEOUT_NS)
        future = outgoing_handler.handle(request, options)
    except Err as e:
        raise _transport_error(e.value) from None

    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if not isinstance(outcome, Ok):
        raise TransportError("InternalError", "the response was already taken")
    if isinstance(outcome.value, Err):
        raise _transport_error(outcome.value.value)
    with outcome.value.value as response:
        status = response.status()
        with response.headers() as fields:
            headers = {name.lower(): value.decode("latin-1") for name, value in fields.entries()}
        with response.consume() as incoming, incoming.stream() as stream:
            return Response(status, _read_all(stream), headers)


def _read_all(stream) -> bytes:
    data = bytearray()
    while True:
        try:
            data += stream.blocking_read(64 * 1024)
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                return bytes(data)
            raise _transport_error(e.value) from None
        if len(data) > MAX_RESPONSE_BYTES:
            raise TransportError(
                "HttpResponseBodySize", f"the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )


def _transport_error(value) -> TransportError:
    """A TransportError from a wasi:http `error-code`, a stream error, or
    whatever else a call raised."""
    if isinstance(value, StreamError_LastOperationFailed):
        with value.value as io_error:
            code = http_error_code(io_error)
            if code is None:
                return TransportError("HttpProtocolError", io_error.to_debug_string())
        value = code
    name = type(value).__name__
    if name.startswith("ErrorCode_"):
        payload = getattr(value, "value", None)
        return TransportError(name[len("ErrorCode_"):], "" if payload is None else str(payload))
    # A header the host refuses (HeaderError_*) or anything unforeseen.
    return TransportError(name, str(value))
