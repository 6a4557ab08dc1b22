"""Permissions: allow/deny rules and allow_responses bookkeeping."""

from __future__ import annotations

from broker.auth import Authenticator, PermissionChecker
from config.options import Options, Permissions, User


def test_allow_and_deny_lists_with_wildcards():
    checker = PermissionChecker(Permissions(publish_allow=["orders.>"],
                                            publish_deny=["orders.secret"],
                                            subscribe_allow=["updates.*"]))
    assert checker.may_publish(b"orders.new")
    assert not checker.may_publish(b"orders.secret")
    assert not checker.may_publish(b"payments.new")
    assert checker.may_subscribe(b"updates.x")
    assert not checker.may_subscribe(b"updates.x.y")


def test_allow_responses_alone_means_replies_only_up_to_max_and_until_expiry():
    now = [0.0]
    checker = PermissionChecker(
        Permissions(allow_responses=True, allow_responses_max_msgs=2,
                    allow_responses_expires=10.0), clock=lambda: now[0])
    assert not checker.may_publish(b"_INBOX.a")
    checker.expect_response(b"_INBOX.a")
    assert checker.may_publish(b"_INBOX.a")
    assert checker.may_publish(b"_INBOX.a")
    assert not checker.may_publish(b"_INBOX.a")
    checker.expect_response(b"_INBOX.b")
    now[0] = 11.0
    assert not checker.may_publish(b"_INBOX.b")
    assert not checker.may_publish(b"anything.else")


def test_users_list_and_no_auth_user():
    options = Options(users=[User("a", "pw"), User("guest", "g")], no_auth_user="guest")
    auth = Authenticator(options)
    assert auth.required
    assert auth.authenticate({"user": "a", "pass": "pw"}).name == "a"
    assert auth.authenticate({"user": "a", "pass": "bad"}) is None
    assert auth.authenticate({}).name == "guest"
    assert auth.authenticate({"user": 5, "pass": "pw"}) is None


def test_token_and_single_user():
    assert Authenticator(Options(authorization="t")).authenticate({"auth_token": "t"}) is not None
    assert Authenticator(Options(authorization="t")).authenticate({"auth_token": "x"}) is None
    single = Authenticator(Options(username="u", password="p"))
    assert single.authenticate({"user": "u", "pass": "p"}).name == "u"
    assert single.authenticate({"user": "u"}) is None
    assert not Authenticator(Options()).required
