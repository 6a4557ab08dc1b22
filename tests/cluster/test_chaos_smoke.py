"""The `make chaos` runner itself, in two short rounds of its harshest faults, so that it keeps
working between the long runs (which are not part of `make test`)."""

from __future__ import annotations

from tests.chaos.__main__ import main_async, parse_args


async def test_chaos_runner_finds_every_acknowledged_message_after_its_faults(capsys):
    args = parse_args(["--rounds", "2", "--per-round", "300", "--seed", "7", "--in-turn",
                       "--faults", "power_loss,partition"])
    assert await main_async(args) == 0
    out = capsys.readouterr().out
    assert "round 1/2: power loss of S" in out and "round 2/2: partitioned S" in out
    assert "chaos: OK: 600 acknowledged messages" in out and "replicas converged" in out
