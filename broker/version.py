"""Versions: the nats-server protocol level we speak, and our own release.

`SERVER_VERSION` goes into INFO and /varz. Clients gate features on it (nats.py uses the 2.9+
consumer-create subjects only when it sees >= 2.9), so it names the nats-server release whose
behaviour we implement, not our package version.
"""

import sys

SERVER_VERSION = "2.10.0"
PACKAGE_VERSION = "0.1.0"
PROTO = 1
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
