"""What every layer shares and no layer owns: subject syntax and Go's times and durations.

A leaf: imports nothing of ours, so storage, config, raft and broker may all import it.

| module | one concept |
| --- | --- |
| `subjects.py` | subject syntax: validity, wildcard matching, subsets, collisions (str or bytes) |
| `gotime.py` | Go's `time.Time` / `time.Duration` as nats-server writes and reads them; `NANOS` |
| `nkeys.py` | nkeys' text form: decode and check a public key (signatures are PyNaCl's) |
"""
