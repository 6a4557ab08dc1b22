"""Authentication with nats-py against real brokers: user/password, token, users list."""

from __future__ import annotations

import nats
import pytest
from nats.errors import NoServersError


async def refused(url: str, **creds) -> bool:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                           connect_timeout=2, error_cb=on_error, **creds)
    return any("authorization violation" in str(e).lower() for e in errors)


async def test_user_and_password_from_flags(start_broker):
    server = start_broker("--user", "alice", "--pass", "s3cret")
    nc = await nats.connect(server.url, user="alice", password="s3cret", allow_reconnect=False)
    sub = await nc.subscribe("x")
    await nc.publish("x", b"ok")
    assert (await sub.next_msg(timeout=2)).data == b"ok"
    await nc.close()
    assert await refused(server.url, user="alice", password="wrong")
    assert await refused(server.url)


async def test_token_from_flags(start_broker):
    server = start_broker("--auth", "t0ken")
    nc = await nats.connect(server.url, token="t0ken", allow_reconnect=False)
    await nc.flush()
    await nc.close()
    assert await refused(server.url, token="nope")


async def test_users_list_with_no_auth_user_and_permissions(start_broker):
    server = start_broker(config="""
        authorization {
          users: [
            { user: admin, password: pw }
            { user: guest, password: guest, permissions: { publish: "public.>", subscribe: ">" } }
          ]
        }
        no_auth_user: guest
    """)
    admin = await nats.connect(server.url, user="admin", password="pw", allow_reconnect=False)
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    anonymous = await nats.connect(server.url, allow_reconnect=False, error_cb=on_error)
    sub = await admin.subscribe(">")
    await admin.flush()
    await anonymous.publish("public.news", b"hello")
    await anonymous.publish("private.secret", b"leak")
    await anonymous.flush()
    msg = await sub.next_msg(timeout=2)
    assert (msg.subject, msg.data) == ("public.news", b"hello")
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.3)
    # nats-py lower-cases the -ERR text before handing it to error_cb.
    assert any('permissions violation for publish to "private.secret"' in str(e) for e in errors)
    await admin.close()
    await anonymous.close()
    assert await refused(server.url, user="admin", password="bad")


async def test_allow_responses_lets_a_responder_answer_but_not_publish(start_broker):
    server = start_broker(config="""
        authorization {
          users: [
            { user: client, password: c }
            { user: service, password: s,
              permissions: { subscribe: "svc.>", allow_responses: true } }
          ]
        }
    """)
    service = await nats.connect(server.url, user="service", password="s",
                                 allow_reconnect=False, error_cb=_ignore)
    client = await nats.connect(server.url, user="client", password="c", allow_reconnect=False)
    watcher = await client.subscribe("other.>")

    async def answer(msg):
        await msg.respond(b"answer")
        await service.publish("other.topic", b"not allowed")

    await service.subscribe("svc.ask", cb=answer)
    await service.flush()
    reply = await client.request("svc.ask", b"q", timeout=2)
    assert reply.data == b"answer"
    await service.flush()
    with pytest.raises(nats.errors.TimeoutError):
        await watcher.next_msg(timeout=0.3)
    await service.close()
    await client.close()


async def _ignore(exc: Exception) -> None:
    pass


async def test_secrets_never_reach_the_log_or_monitoring(start_broker):
    """Traced CONNECTs show [REDACTED] where nats-server does (pass, auth_token); /varz and
    /connz show the user, never the password."""
    server = start_broker("--user", "alice", "--pass", "s3cret-pw-1", "-V")
    nc = await nats.connect(server.url, user="alice", password="s3cret-pw-1",
                            allow_reconnect=False)
    await nc.flush()
    _, varz = server.get("/varz")
    _, connz = server.get("/connz")
    await nc.close()
    assert await refused(server.url, user="alice", password="s3cret-pw-2")
    log = server.log()
    assert '"[REDACTED]"' in log
    for text in (log, str(varz), str(connz)):
        assert "s3cret-pw" not in text
    assert connz["connections"][0]["authorized_user"] == "alice"
