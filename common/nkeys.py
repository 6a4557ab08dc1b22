"""NATS nkeys' text form: base32 (no padding) of a prefix byte, a 32-byte ed25519 public key and
a CRC-16 (XMODEM, little-endian). Encoding, decoding and checking only: signatures are made and
verified by a crypto library (PyNaCl, in broker/auth.py and common/jwt.py), never here.

`U...` is a user's public key, `A...` an account's, `O...` an operator's, `N...` a server's,
`C...` a cluster's, `X...` a curve (x25519) key. A seed (`S...`, 58 characters) packs the seed
prefix and the kind of its public key into its first two bytes, then 32 bytes of ed25519 seed
and the CRC: `SU...` is a user's seed, `SA...` an account's, `SO...` an operator's.
"""

from __future__ import annotations

import base64
import binascii

USER = 20 << 3  # "U"
ACCOUNT = 0  # "A"
OPERATOR = 14 << 3  # "O"
SERVER = 13 << 3  # "N"
CLUSTER = 2 << 3  # "C"
CURVE = 23 << 3  # "X"
SEED = 18 << 3  # "S"
PRIVATE = 15 << 3  # "P"
KEY_LEN = 32
#: The prefixes a public key may have (nkeys' checkValidPublicPrefixByte).
PUBLIC_PREFIXES = frozenset({OPERATOR, SERVER, CLUSTER, ACCOUNT, USER, CURVE})


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys checks its keys."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _encode(body: bytes) -> str:
    raw = body + crc16(body).to_bytes(2, "little")
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _decode(text: object, length: int) -> bytes | None:
    """The checked body (CRC removed) of `text` if it is `length` characters of valid base32."""
    if not isinstance(text, str) or not text.isascii() or len(text) != length:
        return None
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    body, check = raw[:-2], int.from_bytes(raw[-2:], "little")
    return body if crc16(body) == check else None


def decode_any_public(text: object) -> tuple[int, bytes] | None:
    """(prefix, raw 32-byte key) of `text` if it is a valid public nkey of any public kind."""
    body = _decode(text, 56)
    if body is None or len(body) != 1 + KEY_LEN or body[0] not in PUBLIC_PREFIXES:
        return None
    return body[0], body[1:]


def decode_public(text: object, prefix: int) -> bytes | None:
    """The raw 32-byte public key of `text` if it is a valid public nkey of kind `prefix`."""
    found = decode_any_public(text)
    return found[1] if found is not None and found[0] == prefix else None


def encode_public(prefix: int, key: bytes) -> str:
    """The text form of a raw 32-byte public key of kind `prefix` (one of PUBLIC_PREFIXES)."""
    if prefix not in PUBLIC_PREFIXES or len(key) != KEY_LEN:
        raise ValueError("invalid public key prefix or length")
    return _encode(bytes([prefix]) + key)


def encode_seed(prefix: int, seed: bytes) -> str:
    """The text form (`S...`) of a raw 32-byte ed25519 seed whose public key is of kind `prefix`."""
    if prefix not in PUBLIC_PREFIXES or len(seed) != KEY_LEN:
        raise ValueError("invalid seed prefix or length")
    return _encode(bytes([SEED | (prefix >> 5), (prefix & 31) << 3]) + seed)


def decode_seed(text: object) -> tuple[int, bytes] | None:
    """(kind of its public key, raw 32-byte seed) of `text` if it is a valid seed."""
    body = _decode(text, 58)
    if body is None or len(body) != 2 + KEY_LEN or body[0] & 248 != SEED:
        return None
    prefix = (body[0] & 7) << 5 | (body[1] & 248) >> 3
    return (prefix, body[2:]) if prefix in PUBLIC_PREFIXES else None


def is_public_user_key(text: str) -> bool:
    return decode_public(text, USER) is not None


def is_public_account_key(text: str) -> bool:
    return decode_public(text, ACCOUNT) is not None


def is_public_operator_key(text: str) -> bool:
    return decode_public(text, OPERATOR) is not None
