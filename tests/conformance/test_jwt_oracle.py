"""Operator mode on real nats-server binaries: the JWTs tests/jwts.py makes are the ones a real
server accepts and refuses, and common/jwt.py reads them to the same verdict.

Unlike the rest of the suite this does not take its implementations from ``CONFORMANCE_IMPLS``:
it checks the test-side generator against the servers that define the format, and our broker
against the same cases, so it always runs against real nats-server binaries, each skipped when
absent: ``nats-server`` on PATH (the suite's oracle, 2.9.10) and 2.15.1 (`make oracle` installs
it under .tools/), and the broker. It reuses the suite's
launch (`_launch`: ``-c``, random ports, the ports file) and adds ``-D`` so the log says why a
client was refused.

What a client sees for every refusal, on both versions: ``-ERR 'Authorization Violation'`` and
the connection closed; nats-py raises ``nats.errors.Error("nats: 'Authorization Violation'")``.
The reason is only in the server's debug log; `REFUSALS` lists what each version logs.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from common import jwt
from common.jwt import JwtError
from tests import jwts
from tests.jwts import Key

from .conftest import KNOWN_IMPLS, ORACLE, Impl, Server, _launch, _unavailable_reason

pytestmark = pytest.mark.conformance(area="jwt")

SERVERS = {name: tuple(KNOWN_IMPLS[name]) for name in (ORACLE, "nats-server-2.15.1", "broker")}
REFUSED = "nats: 'Authorization Violation'"
T0 = int(time.time()) - 600  # when the revoked user's first JWT was issued


@dataclass
class World:
    """A server in operator mode and the keys behind its configuration."""

    srv: Server
    directory: Path
    operator: Key
    account: Key  # "A": signing key `signing`, scoped key `scoped`, revoked user `revoked`
    signing: Key
    scoped: Key
    revoked: Key
    by_op_signing_key: Key  # an account signed by the operator's signing key
    all_revoked: Key  # an account revoking every user issued up to an hour from now
    untrusted: Key  # an account signed by another operator, preloaded all the same
    accounts: dict[str, str]  # the preloaded account JWTs
    operator_claims: jwt.OperatorClaims


@pytest.fixture(scope="module", params=sorted(SERVERS))
def world(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    impl = Impl(request.param, SERVERS[request.param])
    unavailable = _unavailable_reason(impl)
    if unavailable:
        pytest.skip(f"server unavailable: {unavailable}")
    op, op_signing, system = jwts.operator_key(), jwts.operator_key(), jwts.account_key()
    account, signing, scoped, revoked = (jwts.account_key(), jwts.account_key(),
                                         jwts.account_key(), jwts.user_key())
    by_op_signing_key, all_revoked, untrusted = (jwts.account_key(), jwts.account_key(),
                                                 jwts.account_key())
    template = jwts.user_permission_limits(pub_allow=["team.>"], sub_allow=["team.>"])
    operator_jwt = jwts.operator_jwt(op, name="OP", signing_keys=[op_signing.public],
                                     system_account=system.public)
    accounts = {
        system.public: jwts.account_jwt(system, op, name="SYS"),
        account.public: jwts.account_jwt(
            account, op, name="A", revocations={revoked.public: T0},
            signing_keys=[signing.public, jwts.scope(scoped.public, role="team",
                                                     template=template)]),
        by_op_signing_key.public: jwts.account_jwt(by_op_signing_key, op_signing, name="B"),
        all_revoked.public: jwts.account_jwt(all_revoked, op, name="R",
                                             revocations={"*": int(time.time()) + 3600}),
        untrusted.public: jwts.account_jwt(untrusted, jwts.operator_key(), name="U"),
    }
    directory = tmp_path_factory.mktemp(f"{impl.name}-jwt")
    operator_file = directory / "op.jwt"  # the operator as a file, the way nsc leaves it
    operator_file.write_text(f"-----BEGIN NATS OPERATOR JWT-----\n{operator_jwt}\n"
                             "------END NATS OPERATOR JWT------\n")
    config = jwts.operator_config(str(operator_file), system.public, accounts)
    srv = _launch(impl, directory / "server", ["-D"], config)
    yield World(srv, directory, op, account, signing, scoped, revoked, by_op_signing_key,
                all_revoked, untrusted, accounts, jwt.decode_operator(operator_jwt))
    srv.stop()


# -- users, and what the server and common/jwt.py make of them ----------------------------------


def v1_user(w: World, user: Key, *, v2_signature: bool = False) -> str:
    """A version 1 user JWT: ``type`` at the top level, signed over the claims part only."""
    body = {"jti": "V1", "iat": int(time.time()), "iss": w.account.public, "name": "v1",
            "sub": user.public, "type": "user", "nats": {"pub": {}, "sub": {}}}
    return jwts.sign_token(body, w.account, alg="ed25519", claims_only=not v2_signature)


def tampered(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[:5]}{'A' if sig[5] != 'A' else 'B'}{sig[6:]}"


Maker = Callable[[World, Key], str]

ACCEPTED: dict[str, Maker] = {
    "signed_by_account": lambda w, u: jwts.user_jwt(u.public, w.account),
    "signed_by_signing_key": lambda w, u: jwts.user_jwt(u.public, w.signing,
                                                        issuer_account=w.account.public),
    "signed_by_scoped_key": lambda w, u: jwts.user_jwt(u.public, w.scoped, scoped=True,
                                                       issuer_account=w.account.public),
    "account_signed_by_operator_signing_key":
        lambda w, u: jwts.user_jwt(u.public, w.by_op_signing_key),
    "old_alg_name": lambda w, u: jwts.user_jwt(u.public, w.account, alg="ed25519"),
    "version_1": v1_user,
    "expires_later": lambda w, u: jwts.user_jwt(u.public, w.account,
                                                expires=int(time.time()) + 3600),
    "reissued_after_revocation": lambda w, u: jwts.user_jwt(w.revoked.public, w.account,
                                                            issued_at=T0 + 1),
}

# A JWT that does not decode: 2.9.10 logs "User JWT not valid: <jwt's error>"; 2.15.1 finds no
# user JWT in the CONNECT (it keeps only one that decodes) and logs this.
UNDECODABLE = ("User JWT not valid", "Authentication requires a user JWT")

# name: (maker, common/jwt.py's verdict, what the server's debug log says: one of these)
REFUSALS: dict[str, tuple[Maker, str, tuple[str, ...]]] = {
    "revoked_user": (lambda w, u: jwts.user_jwt(w.revoked.public, w.account, issued_at=T0),
                     "revoked", ("User authentication revoked",)),
    "all_users_revoked": (lambda w, u: jwts.user_jwt(u.public, w.all_revoked),
                          "revoked", ("User authentication revoked",)),
    "unknown_signing_key": (lambda w, u: jwts.user_jwt(u.public, jwts.account_key(),
                                                       issuer_account=w.account.public),
                            "issuer not known", ("User JWT issuer is not known",)),
    "unknown_account": (lambda w, u: jwts.user_jwt(u.public, jwts.account_key()),
                        "account not found", ("Account JWT lookup error",)),
    "account_of_untrusted_operator": (lambda w, u: jwts.user_jwt(u.public, w.untrusted),
                                      "account not trusted", ("Account JWT lookup error",)),
    "expired": (lambda w, u: jwts.user_jwt(u.public, w.account, expires=int(time.time()) - 5),
                jwt.REASON_EXPIRED, ("User JWT no longer valid",)),
    "not_yet_valid": (lambda w, u: jwts.user_jwt(u.public, w.account,
                                                 not_before=int(time.time()) + 3600),
                      jwt.REASON_NOT_YET_VALID, ("User JWT no longer valid",)),
    "forged_signature": (lambda w, u: tampered(jwts.user_jwt(u.public, w.account)),
                         jwt.REASON_SIGNATURE, UNDECODABLE),
    "version_1_signed_over_header": (lambda w, u: v1_user(w, u, v2_signature=True),
                                     jwt.REASON_SIGNATURE, UNDECODABLE),
    "signed_by_operator": (lambda w, u: jwts.user_jwt(u.public, w.operator),
                           jwt.REASON_NOT_ACCOUNT, UNDECODABLE),
    "scoped_user_with_own_permissions": (
        lambda w, u: jwts.user_jwt(u.public, w.scoped, issuer_account=w.account.public),
        jwt.REASON_SCOPED_PERMISSIONS, ("scoped users require no permissions or limits set",)),
}


def our_verdict(w: World, token: str) -> str | None:
    """Why the server would refuse `token`, decided with common/jwt.py alone (None: accept)."""
    try:
        user = jwt.decode_user(token, time.time())
    except JwtError as exc:
        return exc.reason
    if user.validate():
        return "invalid user"
    account_jwt = w.accounts.get(user.account)
    if account_jwt is None:
        return "account not found"
    account = jwt.decode_account(account_jwt, time.time())
    if not w.operator_claims.did_sign(account):
        return "account not trusted"
    if not account.did_sign(user):
        return "issuer not known"
    scope = account.signing_keys.get(user.issuer)
    if scope is not None:
        try:
            scope.check_signed(user)
        except JwtError as exc:
            return exc.reason
    if account.is_revoked(user.subject, user.issued_at):
        return "revoked"
    return None


async def _session(url: str, creds: str, forbidden: str | None) -> list[str]:
    """Connect, echo a message on team.echo, and (if given) publish where not allowed; the
    errors the client was told about."""
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, user_credentials=creds, allow_reconnect=False,
                            connect_timeout=5, error_cb=error_cb)
    try:
        sub = await nc.subscribe("team.echo")
        await nc.publish("team.echo", b"hello")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"hello"
        if forbidden is not None:
            await nc.publish(forbidden, b"no")
            await nc.flush()
            deadline = time.monotonic() + 5
            while not errors and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the -ERR reaches error_cb on its own task
    finally:
        await nc.close()
    return errors


def attempt(w: World, name: str, token: str, seed: str,
            forbidden: str | None = None) -> tuple[str | None, list[str]]:
    """(the error connecting, or None; errors after connecting) of a client with `token`."""
    creds = jwts.write_creds(w.directory / f"{name}.creds", token, seed)
    try:
        return None, asyncio.run(_session(f"nats://{w.srv.host}:{w.srv.port}", creds, forbidden))
    except nats.errors.Error as exc:
        return str(exc), []


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_server_accepts(world: World, case: str):
    user = jwts.user_key()
    token = ACCEPTED[case](world, user)
    seed = world.revoked.seed if case == "reissued_after_revocation" else user.seed
    assert our_verdict(world, token) is None
    error, _ = attempt(world, case, token, seed)
    assert error is None, world.srv.log()[-2000:]


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_server_refuses(world: World, case: str):
    make, ours, logged = REFUSALS[case]
    user = jwts.user_key()
    token = make(world, user)
    seed = world.revoked.seed if case == "revoked_user" else user.seed
    assert our_verdict(world, token) == ours
    before = len(world.srv.log())
    error, _ = attempt(world, case, token, seed)
    assert error == REFUSED
    log = world.srv.log()[before:]
    assert any(reason in log for reason in logged), log


def test_scoped_users_get_the_scope_template(world: World):
    user = jwts.user_key()
    token = ACCEPTED["signed_by_scoped_key"](world, user)
    account = jwt.decode_account(world.accounts[world.account.public])
    scope = account.signing_keys[world.scoped.public]
    assert scope is not None and scope.template.pub.allow == ("team.>",)
    error, later = attempt(world, "scoped-template", token, user.seed, forbidden="other.x")
    assert error is None
    assert 'nats: permissions violation for publish to "other.x"' in later


def monitor(w: World, path: str) -> dict:
    with urllib.request.urlopen(f"{w.srv.monitor_url}{path}", timeout=5) as response:
        return json.load(response)


def payload(token: str) -> str:
    return jwt.b64decode(token.split(".")[1]).decode()


def contained(small: object, big: object) -> bool:
    """Every field of `small` is in `big` with a value it contains. Lists match item by item
    in any order: 2.9.10 keeps some of them (signing keys) in Go maps, whose order is random."""
    if isinstance(small, dict) and isinstance(big, dict):
        return all(k in big and contained(v, big[k]) for k, v in small.items())
    if isinstance(small, list) and isinstance(big, list):
        if len(small) != len(big):
            return False
        unused = list(big)
        for item in small:
            match = next((i for i, other in enumerate(unused) if contained(item, other)), None)
            if match is None:
                return False
            unused.pop(match)
        return True
    return small == big


def test_server_reads_the_claims_as_generated(world: World):
    """The server's own encoding/json of the claims it decoded (/varz for the operator,
    /accountz for an account) is the generated claims JSON: byte for byte on 2.15.1, whose
    nats-io/jwt is the one tests/jwts.py follows; 2.9.10's older jwt lacks some fields
    (``authorization``, a scope's ``description``) but agrees on all it has."""
    if world.srv.impl == "broker":
        pytest.skip("checks the generator against nats-server's own encoding of the claims "
                    "(/accountz and /varz' trusted_operators_* are not implemented here)")
    varz = monitor(world, "/varz")
    assert varz["system_account"] == world.operator_claims.system_account
    operator_jwt = varz["trusted_operators_jwt"][0]
    assert jwt.decode_operator(operator_jwt) == world.operator_claims
    assert jwts.go_json(varz["trusted_operators_claim"][0]) == payload(operator_jwt)
    user = jwts.user_key()  # accounts are fetched when first used
    assert attempt(world, "lookup", jwts.user_jwt(user.public, world.account), user.seed)[0] \
        is None
    detail = monitor(world, f"/accountz?acc={world.account.public}")["account_detail"]
    account_jwt = world.accounts[world.account.public]
    assert detail["jwt"] == account_jwt
    assert detail["issuer_key"] == world.operator.public
    served = detail["decoded_jwt"]
    if world.srv.impl == "nats-server-2.15.1":
        assert jwts.go_json(served) == payload(account_jwt)
    else:
        assert contained(served, json.loads(payload(account_jwt)))
