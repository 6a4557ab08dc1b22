"""What every layer shares and no layer owns: subject syntax and transforms, Go's times and
durations, keys and JWTs.

A leaf: imports nothing of ours, so storage, config, raft and broker may all import it.

| module | one concept |
| --- | --- |
| `subjects.py` | subject syntax: validity, wildcard matching, subsets, collisions (str or bytes) |
| `transform.py` | subject transforms (`$1`, `{{partition}}`, split/slice...): apply, validate |
| `gotime.py` | Go's `time.Time` / `time.Duration` as nats-server writes and reads them; `NANOS` |
| `nkeys.py` | nkeys' text form: decode and check a public key (signatures are PyNaCl's) |
| `jwt.py` | NATS JWTs as operator mode reads them: decode, verify, typed claims, `.creds` |
"""
