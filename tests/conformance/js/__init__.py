"""Differential JetStream conformance suite, recorded against nats-server 2.9.10 (see README.md)."""
