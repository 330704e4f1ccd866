"""The grpc side of :mod:`sloth_core.errors`: abort a call with a typed error, read one back.

Servicers call :func:`abort`; clients call :func:`error_from_rpc`. The table
itself (class ↔ status ↔ reason) lives on the classes in :mod:`sloth_core.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from sloth_core import errors

if TYPE_CHECKING:
    import grpc.aio


async def abort(context: grpc.aio.ServicerContext, exc: errors.SlothError) -> NoReturn:
    """End the call with ``exc``'s status, message and machine-readable reason."""
    import grpc

    await context.abort(
        grpc.StatusCode[exc.status],
        exc.message,
        trailing_metadata=((errors.REASON_METADATA_KEY, exc.reason),),
    )
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def reason_of(exc: grpc.aio.AioRpcError) -> str | None:
    """The ``sloth-reason`` a sloth-runner servicer attached, if any."""
    for key, value in exc.trailing_metadata() or ():
        if key == errors.REASON_METADATA_KEY:
            return value if isinstance(value, str) else value.decode("ascii", "replace")
    return None


def _is_tls_refusal(details: str) -> bool:
    # The one place that reads grpc's text: a refused handshake never reaches
    # a handler, so no server can label it, and grpc reports it as UNAVAILABLE
    # ("Socket closed", "handshake failed", ...) like a master that is down.
    text = details.lower()
    return any(marker in text for marker in ("handshake", "certificate", "ssl", "tls", "socket closed", "alert"))


def error_from_rpc(
    exc: grpc.aio.AioRpcError,
    peer: str,
    *,
    secure: bool = True,
    mid_stream: bool = False,
    what: str = "the master",
) -> errors.SlothError:
    """Translate a failed call into the typed error it means.

    ``mid_stream``: the stream had already delivered messages, so an
    ``UNAVAILABLE`` is the peer going away, never a refusal of our credentials.
    """
    code = exc.code().name
    details = exc.details() or ""
    reason = reason_of(exc)
    if reason is not None:
        return errors.error_for(code, reason, details)
    if code == "UNAVAILABLE":
        if mid_stream:
            return errors.MasterUnreachableError(f"lost the connection to {what} at {peer}")
        if _is_tls_refusal(details):
            if not secure:
                return errors.TLSRefusedError(
                    f"{what} at {peer} refused our plaintext connection: it requires TLS (drop --insecure)"
                )
            return errors.TLSRefusedError(
                f"{what} at {peer} refused our connection: wrong or missing credentials "
                "(use the master's credentials bundle with --credentials, or --insecure if the "
                "master runs without TLS)"
            )
        return errors.MasterUnreachableError(
            f"cannot reach {what} at {peer} (is `sloth-runner master` running there?)"
        )
    if code == "DEADLINE_EXCEEDED":
        return errors.MasterUnreachableError(f"{what} at {peer} did not answer in time")
    if code == "CANCELLED":
        return errors.CallCancelledError("the call was cancelled")
    if code in ("UNKNOWN", "INTERNAL", "UNIMPLEMENTED", "DATA_LOSS"):
        return errors.SlothError(f"{what} at {peer} failed: {code}: {details}")
    return errors.error_for(code, None, details)
