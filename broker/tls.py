"""TLS on the client port: the server's `ssl.SSLContext` from a `tls { }` block, and how a failed
handshake is reported (nats-server's words and log levels).

A client connection reads nothing until its handshake is done (`client.ClientConnection`): after
INFO (which says `tls_required`), or before it with `handshake_first`. A failed or timed-out
handshake closes the connection with "TLS Handshake Failure"; a plain client on a TLS port gets no
-ERR (it could not read it), as from nats-server.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from config.options import TLSOptions

CLOSED_REASON = "TLS Handshake Failure"
_VERSIONS = {"": ssl.TLSVersion.TLSv1_2, "1.2": ssl.TLSVersion.TLSv1_2,
             "1.3": ssl.TLSVersion.TLSv1_3}
# OpenSSL's reasons for "this is not TLS at all": a plain NATS client, or an HTTP request.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL",
            "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_RECORD",
            "RECORD_TOO_LARGE", "NOT_TLS")


class NotTLS(Exception):
    """The client spoke in the clear where the TLS handshake was due."""


class TLSConfigError(Exception):
    """The certificate, key or CA cannot be loaded: the server does not start."""


@dataclass(frozen=True)
class ServerTLS:
    """What client connections need to run the handshake."""

    context: ssl.SSLContext
    timeout: float
    handshake_first: bool
    verify: bool


def server_tls(options: TLSOptions) -> ServerTLS:
    """The server side of the client port's TLS; TLSConfigError naming the file that fails."""
    context = _certified(options)
    if options.ca_file:
        try:
            context.load_verify_locations(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"failed to parse root ca certificate {options.ca_file!r}: "
                                 f"{_reason(exc)}") from None
    if options.verify:
        context.verify_mode = ssl.CERT_REQUIRED
    return ServerTLS(context, options.timeout, options.handshake_first, options.verify)


@dataclass(frozen=True)
class RouteTLS:
    """Routes over TLS: the listener's side (it verifies a peer's certificate when `verify`)
    and the dialing side (it checks the peer's certificate and name against the CA, and
    presents its own certificate)."""

    accept: ssl.SSLContext
    dial: ssl.SSLContext
    timeout: float


def route_tls(options: TLSOptions) -> RouteTLS:
    accept = server_tls(options).context
    dial = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    dial.minimum_version = _VERSIONS[options.min_version]
    try:
        dial.load_cert_chain(options.cert_file, options.key_file)
        if options.ca_file:
            dial.load_verify_locations(cafile=options.ca_file)
        else:
            dial.load_default_certs()
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"route TLS: {_reason(exc)}") from None
    return RouteTLS(accept, dial, options.timeout)


def monitoring_context(options: TLSOptions) -> ssl.SSLContext:
    """The monitoring port's TLS (`https_port`): the client port's certificate, and no client
    certificate asked for, as nats-server serves it."""
    return _certified(options)


def _certified(options: TLSOptions) -> ssl.SSLContext:
    """A server-side context holding the certificate and key of `options`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[options.min_version]
    try:
        context.load_cert_chain(options.cert_file, options.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"error parsing X509 certificate/key pair {options.cert_file!r}, "
                             f"{options.key_file!r}: {_reason(exc)}") from None
    return context


def handshake_failure(exc: BaseException) -> tuple[int, str]:
    """(log level, text) for a failed handshake, as nats-server logs it: a peer that does not
    speak TLS or went quiet is a debug line; a certificate problem is an error."""
    if isinstance(exc, TimeoutError):
        return logging.DEBUG, "TLS handshake error: i/o timeout"
    reason = "NOT_TLS" if isinstance(exc, NotTLS) else getattr(exc, "reason", None) or ""
    if reason in _NOT_TLS:
        return logging.DEBUG, "TLS handshake error: tls: first record does not look like a TLS " \
                              "handshake"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return logging.ERROR, "TLS handshake error: tls: client didn't provide a certificate"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return logging.ERROR, "TLS handshake error: tls: failed to verify certificate: " \
                              f"x509: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return logging.ERROR, f"TLS handshake error: {_reason(exc)}"
    return logging.DEBUG, f"TLS handshake error: {exc or type(exc).__name__}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
