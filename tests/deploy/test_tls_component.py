"""deploy/tls/: the kustomize Component that puts TLS on the client, route and monitoring ports.

Rendered the way its header tells an operator to use it (a kustomization outside deploy/ with
`resources: [deploy]` and `components: [deploy/tls]`), it must: mount the Secret `nats-tls`
read-only where its config reads the certificate, probe over HTTPS at the base's paths, and
carry a config our server loads (with real certificate files in place of the Secret's) that
differs from the base config in TLS only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.certs import authority
from tests.deploy.render import REPO, KustomizeMissing, find, load_config, render_tls

MOUNT = "/etc/nats-tls"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    try:
        return render_tls()
    except KustomizeMissing as exc:
        pytest.skip(str(exc))


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]


def test_the_secret_is_mounted_read_only(rendered):
    spec = find(rendered, "StatefulSet", "nats")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "nats-tls"
    assert volume["secret"]["defaultMode"] == 0o440
    mount = next(m for m in _container(rendered)["volumeMounts"] if m["name"] == "tls")
    assert mount == {"name": "tls", "mountPath": MOUNT, "readOnly": True}


def test_probes_use_https_at_the_base_paths(rendered, base):
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        tls_get = _container(rendered)[probe]["httpGet"]
        base_get = _container(base)[probe]["httpGet"]
        assert tls_get == {**base_get, "scheme": "HTTPS"}, probe


def test_the_config_differs_from_the_base_in_tls_only(rendered, base, tmp_path):
    pki = authority(str(tmp_path / "pki"))
    pair = pki.issue("nats", both=True)
    tls_text = find(rendered, "ConfigMap", "nats-config")["data"]["nats.conf"]
    for name, path in (("tls.crt", pair.cert), ("tls.key", pair.key), ("ca.crt", pki.ca_file)):
        assert f"{MOUNT}/{name}" in tls_text
        tls_text = tls_text.replace(f"{MOUNT}/{name}", path)
    base_text = find(base, "ConfigMap", "nats-config")["data"]["nats.conf"]
    env = {"POD_NAME": "nats-1"}
    with_tls = load_config(tls_text, env, tmp_path / "tls.conf")
    without = load_config(base_text, env, tmp_path / "base.conf")

    assert with_tls.tls is not None and with_tls.tls.cert_file == pair.cert
    assert not with_tls.tls.verify  # clients are not asked for certificates
    assert with_tls.cluster.tls is not None and with_tls.cluster.tls.verify
    assert with_tls.https_port == without.http_port and with_tls.http_port == 0

    stripped = dataclasses.replace(
        with_tls, tls=None, https_port=0, http_port=with_tls.https_port, config_file="",
        cluster=dataclasses.replace(with_tls.cluster, tls=None))
    assert stripped == dataclasses.replace(without, config_file="")


def test_the_readme_shows_the_secret_layout():
    text = (Path(REPO) / "deploy" / "README.md").read_text()
    assert "deploy/tls" in text and "nats-tls" in text and "ca.crt" in text
