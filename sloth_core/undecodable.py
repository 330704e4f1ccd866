"""Requests that cannot be decoded end as INVALID_ARGUMENT, not UNKNOWN.

A ``string`` field holding invalid UTF-8 fails the whole message when grpc
deserializes it, before any servicer runs: grpc then answers ``UNKNOWN`` and
logs a traceback. This interceptor, installed on every server by
:func:`sloth_core.transport.create_server`, turns that into a one-line
``INVALID_ARGUMENT`` (:class:`~sloth_core.errors.InvalidArgumentError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from sloth_core import errors


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


def _lenient(deserialize: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    what = method.rsplit("/", 1)[-1]

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # DecodeError, or anything a broken peer can provoke
            return _Undecodable(what)

    return parse


async def _refuse(request: _Undecodable, context: grpc.aio.ServicerContext) -> None:
    from sloth_core.rpc_errors import abort

    await abort(
        context,
        errors.InvalidArgumentError(
            f"the {request.what} request could not be decoded: text fields must be valid UTF-8"
        ),
    )


def _guard_unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await _refuse(request, context)
        return await behaviour(request, context)

    return call


def _guard_stream(behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await _refuse(request, context)
        async for item in behaviour(request, context):
            yield item

    return call


class UndecodableRequests(grpc.aio.ServerInterceptor):
    """Wraps each unary-request method's deserializer and handler (once per method)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        method = details.method
        cached = self._wrapped.get(method)
        if cached is None:
            parse = _lenient(handler.request_deserializer, method)
            if handler.response_streaming:
                cached = handler._replace(request_deserializer=parse, unary_stream=_guard_stream(handler.unary_stream))  # type: ignore[attr-defined]
            else:
                cached = handler._replace(request_deserializer=parse, unary_unary=_guard_unary(handler.unary_unary))  # type: ignore[attr-defined]
            self._wrapped[method] = cached
        return cached
