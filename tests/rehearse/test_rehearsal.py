"""`make rehearse` in small: deploy/'s three pods in network namespaces, started, killed, cut off
and rolled through lame duck under a publisher, with nothing acknowledged lost or doubled.

Needs root and `ip netns` (skipped with the reason elsewhere) and kustomize (installed by
`make test`). The full-size run with timings is `make rehearse`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.deploy.render import KustomizeMissing, render_tls
from tests.rehearse.pods import WORK_PARENT, Pods, PodsUnavailable, check_permitted, load_template
from tests.rehearse.rehearsal import Scale, rehearse

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(params=["plain", "tls"])
def pods(request):
    """The base, and the base with deploy/tls/ (TLS on client, route and monitoring ports)."""
    try:
        check_permitted()
        template = load_template(render_tls() if request.param == "tls" else None)
    except (PodsUnavailable, KustomizeMissing) as exc:
        pytest.skip(str(exc))
    workdir = Path(tempfile.mkdtemp(prefix="rehearse-test-", dir=WORK_PARENT))
    try:
        with Pods(template, workdir, say=print) as running:
            yield running
            for pod in running.pods:  # shown by pytest only when the test failed
                print(f"--- {pod.name} ---\n{pod.log()[-3000:]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def test_statefulset_rehearsal(pods: Pods) -> None:
    report = await rehearse(pods, Scale(first=200, while_cut=200), print)
    print("\n".join(report.lines()))
    assert report.lost == 0
    assert report.duplicates == 0
    assert report.copies_checked == 3
    assert report.acked_during_roll > 0
    assert set(report.roll) == {"nats-0", "nats-1", "nats-2"}
