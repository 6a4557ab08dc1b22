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
from config.tls import CIPHER_SUITES

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
    _choose_ciphers(context, options.cipher_suites)
    return ServerTLS(context, options.timeout, options.handshake_first, options.verify)


def _choose_ciphers(context: ssl.SSLContext, suites: list[str]) -> None:
    """`cipher_suites` (Go's names, checked by the config): the TLS 1.2 suites offered. Naming
    only TLS 1.3 suites leaves TLS 1.2 nothing to offer, so TLS 1.3 becomes the minimum."""
    if not suites:
        return
    names = [CIPHER_SUITES[suite] for suite in suites if CIPHER_SUITES.get(suite)]
    if not names:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        context.set_ciphers(":".join(name for name in names if name))
    except ssl.SSLError as exc:
        raise TLSConfigError(f"cipher_suites: none of {suites} is available") from exc


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
    _choose_ciphers(dial, options.cipher_suites)
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


# The subject attributes Go's pkix.Name keeps, in the order its ToRDNSequence writes them,
# with the short names its String prints (by the names Python's ssl gives them).
_GO_SUBJECT = (("countryName", "C"), ("organizationName", "O"),
               ("organizationalUnitName", "OU"), ("localityName", "L"),
               ("stateOrProvinceName", "ST"), ("streetAddress", "STREET"),
               ("postalCode", "POSTALCODE"), ("serialNumber", "SERIALNUMBER"),
               ("commonName", "CN"))
# The same attribute in the other spellings a distinguished name in a config may use.
DN_ALIASES = {"commonname": "cn", "countryname": "c", "organizationname": "o",
              "organizationalunitname": "ou", "localityname": "l", "stateorprovincename": "st",
              "streetaddress": "street", "postalcode": "postalcode", "serialnumber":
              "serialnumber", "domaincomponent": "dc", "emailaddress": "e", "email": "e",
              "userid": "uid", "street": "street"}


@dataclass(frozen=True)
class ClientCertificate:
    """The names a verified client certificate gives (verify_and_map), in the order nats-server
    tries them: emails, DNS names, URIs of its alternative names, then its subject."""

    emails: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    # The subject's RDNs as RFC 4514 writes them (the last of the certificate first), each a
    # tuple of (attribute type in lower case, value).
    subject: tuple[tuple[tuple[str, str], ...], ...] = ()
    subject_text: str = ""  # Go's rendering of the subject (pkix.RDNSequence.String)
    with_dcs: str = ""  # Go's rendering without domain components, then DC=... (getTLSAuthDCs)


def client_certificate(peercert: dict) -> ClientCertificate:
    """From `SSLObject.getpeercert()` of a verified client."""
    alt = peercert.get("subjectAltName", ())
    raw = peercert.get("subject", ())
    subject = tuple(tuple(sorted((DN_ALIASES.get(k.lower(), k.lower()), v) for k, v in rdn))
                    for rdn in reversed(raw))
    values: dict[str, list[str]] = {}
    for rdn in raw:
        for name, value in rdn:
            values.setdefault(name, []).append(value)
    # Go's pkix.Name.String: its known attributes in a fixed order, written last first; each
    # type one RDN of all its values. Domain components are not among them: nats-server adds
    # them after, in the certificate's order.
    rdns = ["+".join(f"{short}={_escape(v)}" for v in values[name])
            for name, short in _GO_SUBJECT if name in values]
    text = ",".join(reversed(rdns))
    dcs = values.get("domainComponent", [])
    return ClientCertificate(
        emails=tuple(v for k, v in alt if k == "email"),
        dns_names=tuple(v for k, v in alt if k == "DNS"),
        uris=tuple(v for k, v in alt if k == "URI"),
        subject=subject, subject_text=text,
        with_dcs=",".join([text, *(f"DC={dc}" for dc in dcs)]) if dcs else "")


def _escape(value: str) -> str:
    """RFC 2253 escaping, as Go's pkix does."""
    out = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;' or (index == 0 and char in " #") or \
                (index == len(value) - 1 and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)

