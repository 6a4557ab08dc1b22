"""Operator mode: the config keys (config/operator.py) and who the broker lets in
(broker/operator.py), with JWTs made by tests/jwts.py. The same cases run against real servers
in tests/conformance/test_jwt_oracle.py; here each decision is checked on its own."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from broker.operator import (
    ACCOUNT_MISSING,
    BAD_SIGNATURE,
    ISSUER_UNKNOWN,
    NO_JWT,
    NO_LONGER_VALID,
    REVOKED,
    SCOPED,
    Operator,
)
from config import load
from config.errors import ConfigError
from tests import jwts


class Keys:
    def __init__(self) -> None:
        self.operator, self.system, self.account = (jwts.operator_key(), jwts.account_key(),
                                                    jwts.account_key())
        self.signing, self.scoped, self.revoked = (jwts.account_key(), jwts.account_key(),
                                                   jwts.user_key())
        template = jwts.user_permission_limits(pub_allow=["team.>"], sub_allow=["team.>"])
        limits = jwts.account_limits(mem_storage=-1, disk_storage=1_000_000, streams=3)
        self.accounts = {
            self.system.public: jwts.account_jwt(self.system, self.operator, name="SYS"),
            self.account.public: jwts.account_jwt(
                self.account, self.operator, name="A", limits=limits,
                revocations={self.revoked.public: int(time.time()) - 60},
                signing_keys=[self.signing.public,
                              jwts.scope(self.scoped.public, template=template)],
                exports=[jwts.export("svc.>", "service")]),
        }
        self.operator_jwt = jwts.operator_jwt(self.operator, system_account=self.system.public)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def config(tmp_path: Path, text: str):
    path = tmp_path / "server.conf"
    path.write_text(text)
    return load(str(path))


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, text)
    return str(caught.value)


# --- the config keys ---------------------------------------------------------------------------


def test_operator_from_a_decorated_file_or_inline(tmp_path, keys):
    path = tmp_path / "op.jwt"
    path.write_text(f"-----BEGIN NATS OPERATOR JWT-----\n{keys.operator_jwt}\n"
                    "------END NATS OPERATOR JWT------\n")
    for operator in (str(path), keys.operator_jwt):
        options = config(tmp_path, jwts.operator_config(operator, keys.system.public,
                                                        keys.accounts))
        assert [op.subject for op in options.operators] == [keys.operator.public]
        assert options.resolver == "MEMORY"
        assert options.resolver_preload == keys.accounts
        assert options.system_account == keys.system.public


def test_the_system_account_comes_from_the_operator_when_the_config_has_none(tmp_path, keys):
    preload = "".join(f"  {k}: {v}\n" for k, v in keys.accounts.items())
    options = config(tmp_path, f"operator: {keys.operator_jwt}\nresolver: MEMORY\n"
                               f"resolver_preload: {{\n{preload}}}\n")
    assert options.system_account == keys.system.public


@pytest.mark.parametrize(("extra", "problem"), [
    ("", "operators require an account resolver to be configured"),
    ("resolver: MEMORY\naccounts { A {} }",
     "operators do not allow Accounts to be configured directly"),
    ("resolver: MEMORY\nauthorization { users [ {user: a, password: b} ] }",
     "operators do not allow users to be configured directly"),
    ("resolver: MEMORY\nsystem_account: ANOTHER",
     "system_account in config and operator JWT must be identical"),
    ("resolver: URL(http://localhost/jwt)", "resolver is not supported by this server"),
    ("resolver { type: full, dir: /tmp/jwt }", "resolver is not supported by this server"),
    ("resolver: MEMORY\nresolver_preload { AXYZ: notajwt }", "invalid account JWT"),
    ("resolver: MEMORY\nresolver_preload: [x]",
     "preload should be a map of account_public_key:account_jwt"),
])
def test_operator_mode_misconfigurations_are_refused(tmp_path, keys, extra, problem):
    text = f"operator: {keys.operator_jwt}\n{extra}\n"
    assert problem in config_error(tmp_path, text)


def test_an_operator_file_that_is_missing_or_not_a_jwt(tmp_path):
    assert "error parsing operator JWT: open nope.jwt" in config_error(
        tmp_path, "operator: nope.jwt\nresolver: MEMORY\n")
    (tmp_path / "bad.jwt").write_text("not a jwt")
    assert "error parsing operator JWT" in config_error(
        tmp_path, f"operator: {tmp_path / 'bad.jwt'}\nresolver: MEMORY\n")


# --- who gets in -------------------------------------------------------------------------------


@pytest.fixture
def operator(tmp_path, keys) -> Operator:
    untrusted = jwts.account_key()
    preload = {**keys.accounts,
               untrusted.public: jwts.account_jwt(untrusted, jwts.operator_key(), name="U")}
    options = config(tmp_path, jwts.operator_config(keys.operator_jwt, keys.system.public,
                                                    preload))
    return Operator(options)


NONCE = "n0nce-to-sign"


def connect(user, token: str, nonce: str = NONCE) -> dict[str, object]:
    signature = base64.urlsafe_b64encode(user.sign(nonce.encode())).rstrip(b"=").decode()
    return {"jwt": token, "sig": signature}


def refusal(operator: Operator, connect_opts: dict[str, object]) -> str:
    problem, grant = operator._check_user(connect_opts, NONCE)
    assert grant is None
    return problem


def test_only_accounts_a_trusted_operator_signed_are_served(operator, keys):
    assert set(operator.accounts) == {keys.system.public, keys.account.public}
    account = {a.name: a for a in operator.account_options()}[keys.account.public]
    assert account.jetstream is not None
    assert (account.jetstream.max_file, account.jetstream.max_streams) == (1_000_000, 3)
    assert account.jetstream.max_consumers == -1  # the JWT's 0: no limit
    assert [(e.subject, e.service) for e in account.exports] == [("svc.>", True)]
    system = {a.name: a for a in operator.account_options()}[keys.system.public]
    assert system.jetstream is None


def test_a_user_of_the_account_or_its_signing_key_gets_in(operator, keys):
    user = jwts.user_key()
    for token in (jwts.user_jwt(user.public, keys.account),
                  jwts.user_jwt(user.public, keys.signing, issuer_account=keys.account.public)):
        grant = operator.authenticate(connect(user, token), NONCE)
        assert grant is not None
        assert (grant.user, grant.account, grant.permissions) == (
            user.public, keys.account.public, None)


def test_a_scoped_user_gets_the_scope_template_and_may_not_bring_its_own(operator, keys):
    user = jwts.user_key()
    token = jwts.user_jwt(user.public, keys.scoped, scoped=True,
                          issuer_account=keys.account.public)
    grant = operator.authenticate(connect(user, token), NONCE)
    assert grant is not None and grant.permissions is not None
    assert grant.permissions.publish_allow == ["team.>"]
    own = jwts.user_jwt(user.public, keys.scoped, issuer_account=keys.account.public,
                        permissions=jwts.user_permission_limits(pub_allow=["x"]))
    assert refusal(operator, connect(user, own)) == SCOPED


def test_refusals_name_nats_servers_reasons(operator, keys):
    user = jwts.user_key()
    good = jwts.user_jwt(user.public, keys.account)
    assert refusal(operator, {}) == NO_JWT
    assert refusal(operator, connect(keys.revoked,
                                     jwts.user_jwt(keys.revoked.public, keys.account,
                                                   issued_at=int(time.time()) - 120))) == REVOKED
    assert refusal(operator, connect(user, jwts.user_jwt(user.public, jwts.account_key()))) \
        == ACCOUNT_MISSING
    assert refusal(operator, connect(user, jwts.user_jwt(
        user.public, jwts.account_key(), issuer_account=keys.account.public))) == ISSUER_UNKNOWN
    assert refusal(operator, connect(user, jwts.user_jwt(
        user.public, keys.account, expires=int(time.time()) - 1))) == NO_LONGER_VALID
    assert refusal(operator, connect(user, good, nonce="another nonce")) == BAD_SIGNATURE
    assert refusal(operator, connect(jwts.user_key(), good)) == BAD_SIGNATURE
    assert refusal(operator, {"jwt": good[:-3] + "AAA", "sig": "x"}).startswith(
        "User JWT not valid")


def test_a_user_permissions_and_bearer_token(operator, keys):
    user = jwts.user_key()
    token = jwts.user_jwt(user.public, keys.account, permissions=jwts.user_permission_limits(
        pub_allow=["a.>"], sub_deny=["b.>"], bearer_token=True))
    grant = operator.authenticate({"jwt": token}, NONCE)  # a bearer token signs nothing
    assert grant is not None and grant.permissions is not None
    assert (grant.permissions.publish_allow, grant.permissions.subscribe_deny) == (
        ["a.>"], ["b.>"])


@pytest.mark.parametrize("restriction", [
    {"src": ["10.0.0.0/8"]}, {"times": [("08:00:00", "17:00:00")]}, {"subs": 10},
    {"allowed_connection_types": ["STANDARD"]}, {"payload": 1024}])
def test_restrictions_not_enforced_here_refuse_the_user(operator, keys, restriction):
    user = jwts.user_key()
    token = jwts.user_jwt(user.public, keys.account,
                          permissions=jwts.user_permission_limits(**restriction))
    assert "in user JWTs are not supported by this server" in refusal(
        operator, connect(user, token))


def test_an_account_with_limits_not_enforced_here_is_not_served(tmp_path, keys):
    limited = jwts.account_key()
    preload = {**keys.accounts, limited.public: jwts.account_jwt(
        limited, keys.operator, name="L", limits=jwts.account_limits(conn=5))}
    options = config(tmp_path, jwts.operator_config(keys.operator_jwt, keys.system.public,
                                                    preload))
    assert limited.public not in Operator(options).accounts
