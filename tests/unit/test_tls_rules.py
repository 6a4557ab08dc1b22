"""Pure rules of the TLS and WebSocket edges: how a failed handshake is reported (nats-server's
words and levels), which WebSocket origins may connect, nkeys' text form, and the user a client
certificate names (verify_and_map)."""

from __future__ import annotations

import logging
import ssl

import pytest

from broker.auth import Authenticator, parse_dn
from broker.tls import NotTLS, client_certificate, handshake_failure
from broker.websocket import origin_problem
from common.nkeys import USER, crc16, decode_public, is_public_user_key
from config.options import Options, TLSOptions, User, WebSocketOptions


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] whatever")
    error.reason = reason
    return error


@pytest.mark.parametrize(("exc", "level", "text"), [
    (NotTLS(), logging.DEBUG, "first record does not look like a TLS handshake"),
    (_ssl_error("WRONG_VERSION_NUMBER"), logging.DEBUG, "first record does not look like"),
    (_ssl_error("HTTPS_PROXY_REQUEST"), logging.DEBUG, "first record does not look like"),
    (TimeoutError(), logging.DEBUG, "i/o timeout"),
    (_ssl_error("PEER_DID_NOT_RETURN_A_CERTIFICATE"), logging.ERROR,
     "client didn't provide a certificate"),
    (_ssl_error("SSLV3_ALERT_BAD_CERTIFICATE"), logging.ERROR, "sslv3 alert bad certificate"),
    (ConnectionResetError(104, "Connection reset by peer"), logging.DEBUG, "reset by peer"),
])
def test_handshake_failures_are_reported_as_nats_server_does(exc, level, text):
    got_level, got_text = handshake_failure(exc)
    assert got_level == level and got_text.startswith("TLS handshake error: ")
    assert text in got_text


def test_a_certificate_that_fails_verification_names_the_reason():
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    assert handshake_failure(error) == (
        logging.ERROR, "TLS handshake error: tls: failed to verify certificate: x509: unable to "
                       "get local issuer certificate")


@pytest.mark.parametrize(("options", "host", "origin", "problem"), [
    (WebSocketOptions(), "h:8080", "https://anywhere.example", ""),
    (WebSocketOptions(same_origin=True), "h:8080", None, ""),  # no Origin header: let in
    (WebSocketOptions(same_origin=True), "h:8080", "http://h:8080", ""),
    (WebSocketOptions(same_origin=True), "h:8080", "http://other:8080", "not same origin"),
    (WebSocketOptions(same_origin=True), "h:8080", "http://h:9090", "not same origin"),
    (WebSocketOptions(allowed_origins=["https://app.example"]), "h", "https://app.example", ""),
    (WebSocketOptions(allowed_origins=["https://app.example"]), "h", "https://app.example:443",
     ""),
    (WebSocketOptions(allowed_origins=["https://app.example"]), "h", "http://app.example",
     "not in the allowed list"),
    (WebSocketOptions(allowed_origins=["https://app.example"]), "h", "garbage",
     "not in the allowed list"),
])
def test_websocket_origins(options, host, origin, problem):
    assert origin_problem(options, host, origin) == problem


def test_nkeys_text_form():
    key = "UDQ3X6SNOKLWSIEHS7GIGM5AKHZMYSVK7ZJM7HJEYXXC6K4ZNN4Y6POQ"
    assert is_public_user_key(key)
    raw = decode_public(key, USER)
    assert raw is not None and len(raw) == 32
    assert decode_public(key, 0) is None  # an account key is expected: the prefix differs
    assert not is_public_user_key(key[:-1] + ("A" if key[-1] != "A" else "B"))  # CRC
    assert not is_public_user_key(key.lower())
    assert crc16(b"123456789") == 0x31C3  # CRC-16/XMODEM's check value


# --- verify_and_map: the names a client certificate gives, and the user they find ----------

ALICE = {"subject": ((("countryName", "US"),), (("organizationName", "Acme"),),
                     (("organizationalUnitName", "Ops"),), (("commonName", "alice"),),
                     (("domainComponent", "acme"),), (("domainComponent", "test"),)),
         "subjectAltName": (("email", "alice@acme.test"), ("DNS", "alice.acme.test"),
                            ("URI", "spiffe://acme/alice"))}


def test_a_certificates_names_in_nats_servers_renderings():
    cert = client_certificate(ALICE)
    assert (cert.emails, cert.dns_names, cert.uris) == (
        ("alice@acme.test",), ("alice.acme.test",), ("spiffe://acme/alice",))
    # Go prints the attributes its pkix.Name knows, in its own order, last first...
    assert cert.subject_text == "CN=alice,OU=Ops,O=Acme,C=US"
    # ...and nats-server also tries it with the domain components after, as they came.
    assert cert.with_dcs == "CN=alice,OU=Ops,O=Acme,C=US,DC=acme,DC=test"


def test_a_distinguished_name_is_compared_by_attribute_not_by_spelling():
    cert = client_certificate(ALICE)
    assert parse_dn("DC=test, DC=acme, cn=alice, OU=Ops, O=Acme, C=US") == cert.subject
    assert parse_dn("commonName=alice,OU=Ops,O=Acme,C=US") != cert.subject  # DCs missing
    assert parse_dn(r"CN=a\,b+UID=x,O=Acme") == ((("cn", "a,b"), ("uid", "x")),
                                                  (("o", "Acme"),))
    assert parse_dn("no equals sign") is None


def test_verify_and_map_takes_the_first_name_that_is_a_user():
    def mapping(*names: str) -> Authenticator:
        options = Options(tls=TLSOptions(cert_file="c", key_file="k", verify=True,
                                         verify_and_map=True),
                          users=[User(user=name) for name in names])
        return Authenticator(options)

    cert = client_certificate(ALICE)
    found = mapping("CN=alice,OU=Ops,O=Acme,C=US,DC=acme,DC=test").authenticate({}, "", cert)
    assert found is not None and found.name == "CN=alice,OU=Ops,O=Acme,C=US,DC=acme,DC=test"
    found = mapping("alice.acme.test", "alice@acme.test").authenticate({}, "", cert)
    assert found is not None and found.name == "alice@acme.test"  # emails come first
    assert mapping("someone else").authenticate({"user": "someone else"}, "", cert) is None
    assert mapping("alice@acme.test").authenticate({}, "", None) is None  # no certificate
