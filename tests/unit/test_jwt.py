"""NATS JWTs (common/jwt.py) decoded and verified, against tokens made by tests/jwts.py and two
made by nsc / nats-io/jwt that nats-server's own tests carry."""

from __future__ import annotations

import dataclasses
import json

import pytest

from common import jwt, nkeys
from common.jwt import JwtError
from tests import jwts

NOW = 1_700_000_000

# nats-server server/configs/one.creds: a user JWT nsc made (account key unknown to us).
NSC_USER_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJHRUNQVEpISE1TM01DTUtMVFBHWUdBTzQ1"
    "R1E2TjZRUFlXUTRHUExBRUIzM1ZDUkpOUlZRIiwiaWF0IjoxNjE2MjQ3MjMyLCJpc3MiOiJBQlZSWktKNlo3TklNUElZ"
    "SlJDSEVZRlJVTzdFTk42TldPS1FERkxGREZWUFNNMzZVUFgyVUNQUCIsIm5hbWUiOiJvbmUiLCJzdWIiOiJVRENJQkdH"
    "R0hDSkJRUE9PNFNDSkpCSFpEUjM3TlFHR0NJV01ORzJEREFLSjZXTUtCTUFLWElNTyIsIm5hdHMiOnsicHViIjp7fSwi"
    "c3ViIjp7fSwic3VicyI6LTEsImRhdGEiOi0xLCJwYXlsb2FkIjotMSwidHlwZSI6InVzZXIiLCJ2ZXJzaW9uIjoyfX0."
    "VLhSDtGZEF_jdvgmhgkdISXAt5wFMMZxxwm5w8UrsnlM1hkUvtxBlTe4IP0xJIf4xf8JOR2Bmf73xUGJKUZECQ")
NSC_USER_SEED = "SUAPCDMU5TSHHLWUUZSOUABJXP2GXRCZVEOVWPSVM5XRSXYGQMRRFDYNMY"

# nats-server test/configs/nkeys/op.jwt: a version 1 operator JWT (header alg "ed25519", the
# signature over the claims part only); test/configs/nkeys/test.seed is its seed.
V1_OPERATOR_JWT = (
    "eyJ0eXAiOiJqd3QiLCJhbGciOiJlZDI1NTE5In0.eyJhdWQiOiJURVNUUyIsImV4cCI6MTg1OTEyMTI3NSwianRpIjoi"
    "WE5MWjZYWVBIVE1ESlFSTlFPSFVPSlFHV0NVN01JNVc1SlhDWk5YQllVS0VRVzY3STI1USIsImlhdCI6MTU0Mzc2MTI3"
    "NSwiaXNzIjoiT0NBVDMzTVRWVTJWVU9JTUdOR1VOWEo2NkFIMlJMU0RBRjNNVUJDWUFZNVFNSUw2NU5RTTZYUUciLCJu"
    "YW1lIjoiU3luYWRpYSBDb21tdW5pY2F0aW9ucyBJbmMuIiwibmJmIjoxNTQzNzYxMjc1LCJzdWIiOiJPQ0FUMzNNVFZV"
    "MlZVT0lNR05HVU5YSjY2QUgyUkxTREFGM01VQkNZQVk1UU1JTDY1TlFNNlhRRyIsInR5cGUiOiJvcGVyYXRvciIsIm5h"
    "dHMiOnsic2lnbmluZ19rZXlzIjpbIk9EU0tSN01ZRlFaNU1NQUo2RlBNRUVUQ1RFM1JJSE9GTFRZUEpSTUFWVk40T0xW"
    "MllZQU1IQ0FDIiwiT0RTS0FDU1JCV1A1MzdEWkRSVko2NTdKT0lHT1BPUTZLRzdUNEhONk9LNEY2SUVDR1hEQUhOUDIi"
    "LCJPRFNLSTM2TFpCNDRPWTVJVkNSNlA1MkZaSlpZTVlXWlZXTlVEVExFWjVUSzJQTjNPRU1SVEFCUiJdfX0.hyfz6E39"
    "BMUh0GLzovFfk3wT4OfualftjdJ_eYkLfPvu5tZubYQ_Pn9oFYGCV_6yKy3KMGhWGUCyCdHaPhalBw")
V1_OPERATOR_SEED = "SOAFYNORQLQFJYBYNUGC5D7SH2MXMUX5BFEWWGHN3EK4VGG5TPT5DZP7QU"


def parts(token: str) -> tuple[dict, dict, str]:
    head, body, sig = token.split(".")
    return json.loads(jwt.b64decode(head)), json.loads(jwt.b64decode(body)), sig


def reason(token: str, now: float | None = None) -> str:
    with pytest.raises(JwtError) as caught:
        jwt.decode(token, now)
    return caught.value.reason


# -- nkeys -------------------------------------------------------------------------------------


def test_seed_and_public_key_text_forms():
    key = jwts.user_key()
    assert key.seed.startswith("SU") and len(key.seed) == 58
    assert key.public.startswith("U") and len(key.public) == 56
    assert jwts.account_key().seed.startswith("SA")
    assert jwts.operator_key().public.startswith("O")
    prefix, raw = nkeys.decode_seed(key.seed)
    assert prefix == nkeys.USER and nkeys.encode_seed(nkeys.USER, raw) == key.seed
    assert nkeys.decode_any_public(key.public)[0] == nkeys.USER
    assert nkeys.is_public_user_key(key.public) and not nkeys.is_public_account_key(key.public)
    # A character inside the key: every bit of it is data (the last one's low bits are
    # padding, so changing it may change nothing), and the CRC catches it.
    broken = key.seed[:10] + ("A" if key.seed[10] != "A" else "B") + key.seed[11:]
    assert nkeys.decode_seed(broken) is None
    assert nkeys.decode_seed(key.public) is None
    assert nkeys.decode_any_public(key.seed) is None
    assert jwts.key_from_seed(NSC_USER_SEED).public == jwt.decode_user(NSC_USER_JWT).subject


# -- the generator is nsc's --------------------------------------------------------------------


def test_generator_writes_the_claims_nsc_wrote_byte_for_byte():
    made = jwt.decode_user(NSC_USER_JWT)
    nats = {**jwts.user_permission_limits(), "type": "user", "version": 2}
    mine = jwts.claims(made.subject, nats, made.issuer, name="one", issued_at=made.issued_at)
    assert jwts.go_json(mine) == jwt.b64decode(NSC_USER_JWT.split(".")[1]).decode()
    assert mine["jti"] == made.jti == "GECPTJHHMS3MCMKLTPGYGAO45GQ6N6QPYWQ4GPLAEB33VCRJNRVQ"


def test_go_json_escapes_like_encoding_json():
    assert jwts.go_json({"a": ["x.>", "<&>"], "b": True, "c": -1, "d": "\u2028\t"}) == \
        '{"a":["x.\\u003e","\\u003c\\u0026\\u003e"],"b":true,"c":-1,"d":"\\u2028\\t"}'


def test_header_and_registered_claims_are_nsc_s():
    op = jwts.operator_key()
    header, body, _ = parts(jwts.operator_jwt(op, name="O", issued_at=NOW, expires=NOW + 9))
    assert header == {"typ": "JWT", "alg": "ed25519-nkey"}
    assert list(body) == ["exp", "jti", "iat", "iss", "name", "sub", "nats"]
    assert body["nats"] == {"type": "operator", "version": 2}


# -- round trips -----------------------------------------------------------------------------


def test_operator_round_trip():
    op, sk, sys_account = jwts.operator_key(), jwts.operator_key(), jwts.account_key()
    token = jwts.operator_jwt(op, name="OP", signing_keys=[sk.public],
                              system_account=sys_account.public,
                              account_server_url="http://localhost:9090/jwt/v1",
                              tags=["a", "b"], issued_at=NOW)
    claims = jwt.decode_operator(token, NOW)
    assert (claims.subject, claims.issuer, claims.name) == (op.public, op.public, "OP")
    assert (claims.claim_type, claims.version, claims.issued_at) == ("operator", 2, NOW)
    assert claims.signing_keys == (sk.public,)
    assert claims.system_account == sys_account.public
    assert claims.account_server_url == "http://localhost:9090/jwt/v1"
    assert claims.tags == ("a", "b")
    assert claims.is_self_signed()
    assert claims.trusted_keys() == (op.public, sk.public)
    strict = jwt.decode_operator(jwts.operator_jwt(op, signing_keys=[sk.public],
                                                   strict_signing_key_usage=True))
    assert strict.trusted_keys() == (sk.public,)


def test_account_round_trip():
    op, acc, sk, scoped = (jwts.operator_key(), jwts.account_key(), jwts.account_key(),
                           jwts.account_key())
    other, user = jwts.account_key(), jwts.user_key()
    template = jwts.user_permission_limits(pub_allow=["{{name()}}.>"], subs=10,
                                           resp=(1, 2_000_000_000))
    token = jwts.account_jwt(
        acc, op, name="ACC", issued_at=NOW,
        limits=jwts.account_limits(conn=5, payload=1024, mem_storage=-1, disk_storage=1 << 30,
                                   streams=3, consumer=-1, max_bytes_required=True),
        signing_keys=[sk.public, jwts.scope(scoped.public, role="dev", template=template,
                                            description="devs")],
        revocations={user.public: NOW, "*": NOW - 100},
        exports=[jwts.export("svc.>", "service", response_type="Stream"),
                 jwts.export("events.*", token_req=True, account_token_position=2)],
        imports=[jwts.import_("feed.>", other.public, local_subject="in.>")],
        description="an account", tags=["t"])
    claims = jwt.decode_account(token, NOW)
    assert (claims.subject, claims.issuer, claims.name) == (acc.public, op.public, "ACC")
    limits = claims.limits
    assert (limits.subs, limits.conn, limits.payload, limits.wildcards) == (-1, 5, 1024, True)
    assert (limits.imports, limits.exports, limits.leaf) == (-1, -1, -1)
    assert limits.jetstream == jwt.JetStreamLimits(
        mem_storage=-1, disk_storage=1 << 30, streams=3, consumer=-1, max_bytes_required=True)
    assert limits.is_jetstream_enabled()
    assert claims.signing_keys[sk.public] is None
    scope = claims.signing_keys[scoped.public]
    assert scope is not None and (scope.role, scope.description) == ("dev", "devs")
    assert scope.template.pub.allow == ("{{name()}}.>",)
    assert (scope.template.subs, scope.template.data, scope.template.payload) == (10, -1, -1)
    assert scope.template.resp == jwt.ResponsePermission(1, 2_000_000_000)
    assert claims.revocations == {user.public: NOW, "*": NOW - 100}
    assert [e.subject for e in claims.exports] == ["events.*", "svc.>"]  # sorted as Go does
    service = claims.exports[1]
    assert (service.type, service.response_type) == ("service", "Stream")
    assert (claims.exports[0].token_req, claims.exports[0].account_token_position) == (True, 2)
    assert claims.imports == (jwt.Import(subject="feed.>", account=other.public,
                                         local_subject="in.>", type="stream"),)
    assert claims.default_permissions == jwt.Permissions()
    assert (claims.description, claims.tags) == ("an account", ("t",))


def test_account_jetstream_tiers_replace_the_flat_limits():
    op, acc = jwts.operator_key(), jwts.account_key()
    limits = jwts.account_limits(tiered_limits={"R1": {"mem_storage": -1, "streams": 2}})
    claims = jwt.decode_account(jwts.account_jwt(acc, op, limits=limits))
    assert claims.limits.tiered_limits["R1"].streams == 2
    assert claims.limits.jetstream == jwt.JetStreamLimits()
    assert claims.limits.is_jetstream_enabled()
    plain = jwt.decode_account(jwts.account_jwt(acc, op))
    assert not plain.limits.is_jetstream_enabled()


def test_user_round_trip():
    acc, user = jwts.account_key(), jwts.user_key()
    perms = jwts.user_permission_limits(
        pub_allow=["orders.>"], pub_deny=["orders.secret"], sub_allow=["q.* workers"],
        resp=(3, 1_500_000_000), src=["192.168.0.0/16", "::1/128"],
        times=[("08:00:00", "17:30:00")], times_location="Europe/Paris", subs=100, data=-1,
        payload=4096, bearer_token=True, allowed_connection_types=["STANDARD", "WEBSOCKET"])
    token = jwts.user_jwt(user.public, acc, name="alice", permissions=perms, tags=["x"],
                          issued_at=NOW, expires=NOW + 60)
    claims = jwt.decode_user(token, NOW)
    assert (claims.subject, claims.issuer, claims.account) == (user.public, acc.public,
                                                               acc.public)
    assert (claims.name, claims.expires, claims.issuer_account) == ("alice", NOW + 60, "")
    p = claims.permissions
    assert p.pub == jwt.Permission(("orders.>",), ("orders.secret",))
    assert p.sub == jwt.Permission(("q.* workers",))
    assert p.resp == jwt.ResponsePermission(max_msgs=3, ttl_ns=1_500_000_000)
    assert p.src == ("192.168.0.0/16", "::1/128")
    assert p.times == (jwt.TimeRange("08:00:00", "17:30:00"),)
    assert (p.times_location, p.subs, p.data, p.payload) == ("Europe/Paris", 100, -1, 4096)
    assert p.bearer_token and p.allowed_connection_types == ("STANDARD", "WEBSOCKET")
    assert claims.tags == ("x",)
    assert not claims.has_empty_permissions()
    assert claims.validate() == []


def test_src_may_be_a_comma_separated_string():
    acc, user = jwts.account_key(), jwts.user_key()
    nats = {"pub": {}, "sub": {}, "src": " 10.0.0.0/8, 10.0.0.0/8,,1.2.3.4/32",
            "type": "user", "version": 2}
    claims = jwt.decode_user(jwts.encode(user.public, nats, acc))
    assert claims.permissions.src == ("10.0.0.0/8", "1.2.3.4/32")


# -- versions and headers ---------------------------------------------------------------------


def test_version_1_operator_from_nats_server_tests():
    claims = jwt.decode_operator(V1_OPERATOR_JWT)
    assert claims.version == 1 and claims.claim_type == "operator"
    assert claims.subject == jwts.key_from_seed(V1_OPERATOR_SEED).public
    assert claims.audience == "TESTS" and claims.name == "Synadia Communications Inc."
    assert len(claims.signing_keys) == 3
    assert (claims.not_before, claims.expires) == (1543761275, 1859121275)
    assert reason(V1_OPERATOR_JWT, now=1859121276) == jwt.REASON_EXPIRED
    assert reason(V1_OPERATOR_JWT, now=1543761274) == jwt.REASON_NOT_YET_VALID
    jwt.decode(V1_OPERATOR_JWT, now=1859121275)  # valid through its exp second
    # A version 1 claim signed over header.claims (the version 2 way) is refused.
    key = jwts.key_from_seed(V1_OPERATOR_SEED)
    _, body, _ = parts(V1_OPERATOR_JWT)
    assert jwt.decode(jwts.sign_token(body, key, alg="ed25519", claims_only=True)).version == 1
    assert reason(jwts.sign_token(body, key, alg="ed25519")) == jwt.REASON_SIGNATURE


def test_version_1_user_defaults_and_issuer_account():
    acc, sk, user = jwts.account_key(), jwts.account_key(), jwts.user_key()
    body = {"jti": "X", "iat": NOW, "iss": sk.public, "sub": user.public, "type": "user",
            "issuer_account": acc.public, "tags": ["old"],
            "nats": {"pub": {"allow": ["a"]}, "sub": {}, "subs": 5}}
    claims = jwt.decode_user(jwts.sign_token(body, sk, alg="ed25519", claims_only=True))
    assert claims.version == 1 and claims.issuer_account == acc.public
    assert claims.tags == ("old",)
    p = claims.permissions
    assert (p.subs, p.data, p.payload, p.pub.allow) == (5, -1, -1, ("a",))


def test_old_algorithm_name_and_any_case_are_accepted_for_version_2():
    acc, user = jwts.account_key(), jwts.user_key()
    for alg in ("ed25519", "ED25519-NKEY"):
        token = jwts.user_jwt(user.public, acc, alg=alg)
        assert jwt.decode_user(token).subject == user.public
    lower_typ = jwts.claims(user.public, {"type": "user", "version": 2}, acc.public)
    head = jwt.b64encode(b'{"typ":"jwt","alg":"ed25519-nkey"}')
    payload = jwt.b64encode(jwts.go_json(lower_typ).encode())
    token = f"{head}.{payload}.{jwt.b64encode(acc.sign(f'{head}.{payload}'.encode()))}"
    assert jwt.decode_user(token).subject == user.public


@pytest.mark.parametrize("header", [
    {"typ": "JWT", "alg": "ES256"}, {"typ": "JWT", "alg": "ed25519-nkeys"},
    {"typ": "JOSE", "alg": "ed25519-nkey"}, {"alg": "ed25519-nkey"}])
def test_other_headers_are_refused(header):
    acc, user = jwts.account_key(), jwts.user_key()
    head = jwt.b64encode(json.dumps(header).encode())
    body = jwts.claims(user.public, {"type": "user", "version": 2}, acc.public)
    payload = jwt.b64encode(jwts.go_json(body).encode())
    token = f"{head}.{payload}.{jwt.b64encode(acc.sign(f'{head}.{payload}'.encode()))}"
    assert reason(token) == jwt.REASON_HEADER


def test_versions_and_claim_types_the_library_does_not_read():
    acc, user = jwts.account_key(), jwts.user_key()
    assert reason(jwts.encode(user.public, {"type": "user", "version": 3}, acc)) == \
        jwt.REASON_VERSION
    assert reason(jwts.encode(user.public, {"type": "user"}, acc)) == jwt.REASON_VERSION
    assert reason(jwts.encode(user.public, {"type": "server", "version": 2}, acc)) == \
        jwt.REASON_CLAIM_TYPE
    # A claim of no known type is generic; jwt verifies it over the claims part only.
    body = jwts.claims(user.public, {"what": "ever"}, acc.public)
    generic = jwt.decode(jwts.sign_token(body, acc, claims_only=True))
    assert type(generic) is jwt.Claims and generic.raw["nats"] == {"what": "ever"}
    assert reason(jwts.sign_token(body, acc)) == jwt.REASON_SIGNATURE


# -- refusals ---------------------------------------------------------------------------------


def test_forged_and_tampered_tokens_fail_verification():
    acc, user = jwts.account_key(), jwts.user_key()
    token = jwts.user_jwt(user.public, acc)
    head, payload, sig = token.split(".")
    _, body, _ = parts(token)
    body["nats"]["pub"] = {"allow": [">"]}
    forged = f"{head}.{jwt.b64encode(json.dumps(body).encode())}.{sig}"
    assert reason(forged) == jwt.REASON_SIGNATURE
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert reason(f"{head}.{payload}.{flipped}") == jwt.REASON_SIGNATURE
    assert reason(f"{head}.{payload}.") == jwt.REASON_SIGNATURE


def test_a_token_signed_by_a_key_other_than_its_issuer_fails():
    acc, mallory, user = jwts.account_key(), jwts.account_key(), jwts.user_key()
    body = jwts.claims(user.public, {"type": "user", "version": 2}, acc.public)
    assert reason(jwts.sign_token(body, mallory)) == jwt.REASON_SIGNATURE
    body["iss"] = "not a key"
    assert reason(jwts.sign_token(body, mallory)) == jwt.REASON_SIGNATURE


def test_issuer_must_be_of_the_kind_that_signs_the_claim():
    op, acc, user = jwts.operator_key(), jwts.account_key(), jwts.user_key()
    assert reason(jwts.operator_jwt(op, signer=acc)) == jwt.REASON_NOT_OPERATOR
    assert reason(jwts.user_jwt(user.public, op)) == jwt.REASON_NOT_ACCOUNT
    assert reason(jwts.account_jwt(acc, user)) == jwt.REASON_NOT_ACCOUNT_OR_OPERATOR
    # Self-signed accounts decode (the server then finds no trusted operator signed them).
    assert jwt.decode_account(jwts.account_jwt(acc, acc)).is_self_signed()
    # An operator signed by another operator passes decoding: it just is not self-signed.
    assert not jwt.decode_operator(jwts.operator_jwt(op, signer=jwts.operator_key()))\
        .is_self_signed()


def test_expiry_and_not_before():
    acc, user = jwts.account_key(), jwts.user_key()
    token = jwts.user_jwt(user.public, acc, expires=NOW, not_before=NOW - 10)
    assert jwt.decode_user(token, NOW).expires == NOW
    assert jwt.decode_user(token, NOW + 0.99).expires == NOW
    assert reason(token, NOW + 1) == jwt.REASON_EXPIRED
    assert reason(token, NOW - 11) == jwt.REASON_NOT_YET_VALID
    jwt.decode_user(token)  # no clock, no time check
    with pytest.raises(JwtError, match="expired"):
        jwt.decode_user(token).check_times(NOW + 1)


def test_wrong_claim_type():
    op, acc, user = jwts.operator_key(), jwts.account_key(), jwts.user_key()
    with pytest.raises(JwtError) as caught:
        jwt.decode_user(jwts.account_jwt(acc, op))
    assert caught.value.reason == jwt.REASON_WRONG_TYPE
    assert "expected user, got account" in str(caught.value)
    with pytest.raises(JwtError, match=jwt.REASON_WRONG_TYPE):
        jwt.decode_account(jwts.user_jwt(user.public, acc))
    with pytest.raises(JwtError, match=jwt.REASON_WRONG_TYPE):
        jwt.decode_operator(jwts.account_jwt(acc, op))


@pytest.mark.parametrize("token", [
    "", "a.b", "a.b.c.d", "e30.e30.", "!!!.e30.", "e30=.e30.", "W10.e30.", "eyJ.e30.",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.W10.",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.TmFO.",  # NaN
])
def test_malformed_tokens(token):
    with pytest.raises(JwtError) as caught:
        jwt.decode(token)
    assert caught.value.reason in (jwt.REASON_MALFORMED, jwt.REASON_HEADER)


def test_too_large():
    assert reason("a" * (jwt.MAX_TOKEN_SIZE + 1)) == jwt.REASON_TOO_LARGE


@pytest.mark.parametrize("field, value", [
    ("iat", "now"), ("exp", 1.5), ("sub", 5), ("nats.subs", True), ("nats.pub", []),
    ("nats.pub.allow", "x"), ("nats.resp.ttl", "1s"), ("nats.bearer_token", 1)])
def test_claims_of_the_wrong_json_type_are_invalid(field, value):
    acc, user = jwts.account_key(), jwts.user_key()
    body = jwts.claims(user.public, {"pub": {}, "sub": {}, "resp": {"max": 1, "ttl": 1},
                                     "type": "user", "version": 2}, acc.public)
    *path, last = field.split(".")
    target = body
    for step in path:
        target = target[step]
    target[last] = value
    assert reason(jwts.sign_token(body, acc)) == jwt.REASON_INVALID


def test_unknown_export_type_and_signing_key_scope_are_invalid():
    op, acc = jwts.operator_key(), jwts.account_key()
    bad_export = jwts.account_jwt(acc, op, exports=[{"subject": "x", "type": "queue"}])
    assert reason(bad_export) == jwt.REASON_INVALID
    bad_scope = jwts.account_jwt(acc, op, signing_keys=[{"kind": "other", "key": "A"}])
    assert reason(bad_scope) == jwt.REASON_INVALID


# -- signing keys, scopes, revocations -----------------------------------------------------------


def test_user_signed_by_an_unscoped_signing_key():
    op, acc, sk, stranger, user = (jwts.operator_key(), jwts.account_key(), jwts.account_key(),
                                   jwts.account_key(), jwts.user_key())
    account = jwt.decode_account(jwts.account_jwt(acc, op, signing_keys=[sk.public]))
    claims = jwt.decode_user(jwts.user_jwt(user.public, sk, issuer_account=acc.public))
    assert (claims.issuer, claims.issuer_account, claims.account) == (sk.public, acc.public,
                                                                      acc.public)
    assert account.did_sign(claims) and account.signing_keys[claims.issuer] is None
    unknown = jwt.decode_user(jwts.user_jwt(user.public, stranger, issuer_account=acc.public))
    assert not account.did_sign(unknown) and unknown.issuer not in account.signing_keys
    assert account.did_sign(jwt.decode_user(jwts.user_jwt(user.public, acc)))
    assert not account.did_sign(jwt.decode_user(jwts.user_jwt(user.public, sk)))


def test_user_signed_by_a_scoped_signing_key():
    op, acc, scoped, user = (jwts.operator_key(), jwts.account_key(), jwts.account_key(),
                             jwts.user_key())
    template = jwts.user_permission_limits(pub_allow=["team.>"])
    account = jwt.decode_account(jwts.account_jwt(
        acc, op, signing_keys=[jwts.scope(scoped.public, role="team", template=template)]))
    token = jwts.user_jwt(user.public, scoped, issuer_account=acc.public, scoped=True)
    assert parts(token)[1]["nats"] == {"pub": {}, "sub": {}, "issuer_account": acc.public,
                                       "type": "user", "version": 2}
    claims = jwt.decode_user(token)
    assert claims.has_empty_permissions() and account.did_sign(claims)
    scope = account.signing_keys[scoped.public]
    assert scope is not None
    scope.check_signed(claims)
    assert scope.template.pub.allow == ("team.>",)
    with_permissions = jwt.decode_user(jwts.user_jwt(user.public, scoped,
                                                     issuer_account=acc.public))
    with pytest.raises(JwtError, match=jwt.REASON_SCOPED_PERMISSIONS):
        scope.check_signed(with_permissions)
    by_account = jwt.decode_user(jwts.user_jwt(user.public, acc, scoped=True))
    with pytest.raises(JwtError, match=jwt.REASON_NOT_SCOPED_SIGNER):
        scope.check_signed(by_account)


def test_revocations_cover_jwts_issued_at_or_before_the_revocation():
    op, acc, user, other = (jwts.operator_key(), jwts.account_key(), jwts.user_key(),
                            jwts.user_key())
    account = jwt.decode_account(jwts.account_jwt(acc, op, revocations={user.public: NOW}))
    assert account.is_revoked(user.public, NOW)
    assert account.is_revoked(user.public, NOW - 1)
    assert not account.is_revoked(user.public, NOW + 1)
    assert not account.is_revoked(other.public, NOW)
    everyone = jwt.decode_account(jwts.account_jwt(acc, op, revocations={"*": NOW}))
    assert everyone.is_revoked(other.public, NOW) and not everyone.is_revoked(other.public,
                                                                              NOW + 1)


def test_operator_did_sign_with_signing_keys_and_strict_usage():
    op, sk, acc = jwts.operator_key(), jwts.operator_key(), jwts.account_key()
    operator = jwt.decode_operator(jwts.operator_jwt(op, signing_keys=[sk.public]))
    assert operator.did_sign(jwt.decode_account(jwts.account_jwt(acc, op)))
    assert operator.did_sign(jwt.decode_account(jwts.account_jwt(acc, sk)))
    assert not operator.did_sign(jwt.decode_account(jwts.account_jwt(acc, jwts.operator_key())))
    strict = dataclasses.replace(operator, strict_signing_key_usage=True)
    assert not strict.did_sign(jwt.decode_account(jwts.account_jwt(acc, op)))
    assert strict.did_sign(operator)  # itself
    assert strict.did_sign(jwt.decode_account(jwts.account_jwt(acc, sk)))


# -- user validation ----------------------------------------------------------------------------


def test_user_validation_issues():
    acc, user = jwts.account_key(), jwts.user_key()
    perms = jwts.user_permission_limits(
        pub_allow=["a b"], pub_deny=[".x"], sub_allow=["q  g", "good queue"], sub_deny=["a..b"],
        src=["10.0.0.1", "10.0.0.0/33", "10.0.0.0/8"],
        times=[("25:00:00", "9:00:00"), ("", "10:00:00"), ("1:02:03.5", "23:59:59")],
        times_location="Mars/Olympus")
    token = jwts.user_jwt(user.public, acc, permissions=perms, issuer_account=user.public)
    issues = jwt.decode_user(token).validate()
    assert issues == [
        "Permission Subject 'q  g' contains too many spaces",
        "subject 'a..b' cannot contain consecutive `.`",
        "Permission Subject 'a b' is not allowed to contain queue",
        "subject '.x' cannot start or end with a `.`",
        "invalid cidr '10.0.0.1' in user src limits",
        "invalid cidr '10.0.0.0/33' in user src limits",
        "start in time range is invalid '25:00:00'",
        "time ranges start must contain a start",
        "could not parse iana time zone by name: Mars/Olympus",
        "account_id is not an account public key",
    ]


# -- creds ----------------------------------------------------------------------------------------


def test_creds_round_trip(tmp_path):
    acc, user = jwts.account_key(), jwts.user_key()
    token = jwts.user_jwt(user.public, acc)
    path = jwts.write_creds(tmp_path / "u.creds", token, user.seed)
    with open(path) as f:
        text = f.read()
    assert text.startswith("-----BEGIN NATS USER JWT-----\n")
    creds = jwt.parse_creds(text)
    assert creds == jwt.Creds(token, user.seed)
    assert jwts.key_from_seed(creds.seed).public == jwt.decode_user(creds.jwt).subject
    assert jwt.parse_creds(text.replace("\n", "\r\n")) == creds
    assert jwt.parse_creds(text.rstrip("\n*").rstrip()) == creds  # no trailing newline
    assert jwt.parse_decorated_jwt(text) == token


def test_creds_as_nats_go_tolerates_them():
    acc, user = jwts.account_key(), jwts.user_key()
    token = jwts.user_jwt(user.public, acc)
    commented = (f"# my creds\n\n---- BEGIN anything ----\n{token}\n---- END ----\n"
                 f"*** keep secret ***\n------ seed ------\n{user.seed}\n------ end ------\n")
    assert jwt.parse_creds(commented) == jwt.Creds(token, user.seed)
    # Without a second block the seed is the first line starting with SO, SA or SU.
    loose = f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n" \
            f"  {user.seed}  \n"
    assert jwt.parse_creds(loose) == jwt.Creds(token, user.seed)
    assert jwt.parse_decorated_jwt(f"  {token}\n") == token


def test_creds_without_a_valid_seed():
    acc, user = jwts.account_key(), jwts.user_key()
    token = jwts.user_jwt(user.public, acc)
    jwt_only = f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n"
    with pytest.raises(JwtError, match="no nkey seed found"):
        jwt.parse_creds(jwt_only)
    broken = jwts.creds_text(token, user.seed[:-2] + "AA")
    with pytest.raises(JwtError) as caught:
        jwt.parse_creds(broken)
    assert caught.value.reason == jwt.REASON_CREDS
    with pytest.raises(JwtError, match="doesn't contain a seed"):
        jwt.parse_creds(jwt_only + f"-----BEGIN X-----\n{user.public}\n-----END X-----\n")


# -- the operator-mode configuration --------------------------------------------------------------


def test_operator_config_text():
    op, sys_account = jwts.operator_key(), jwts.account_key()
    operator = jwts.operator_jwt(op, system_account=sys_account.public)
    account = jwts.account_jwt(sys_account, op, name="SYS")
    text = jwts.operator_config(operator, sys_account.public, {sys_account.public: account})
    assert text == (f'operator: "{operator}"\nsystem_account: {sys_account.public}\n'
                    f'resolver: MEMORY\nresolver_preload: {{\n'
                    f'  {sys_account.public}: "{account}"\n}}\n')
