"""NATS nkeys' text form: base32 of a prefix byte, a 32-byte ed25519 public key and a CRC-16
(XMODEM, little-endian). Decoding and checking only: signatures are verified by a crypto
library (PyNaCl, in broker/auth.py), never here.

`U...` is a user's public key, `A...` an account's, `O...` an operator's, `N...` a server's.
"""

from __future__ import annotations

import base64
import binascii

USER = 20 << 3  # "U"
ACCOUNT = 0  # "A"
OPERATOR = 14 << 3  # "O"
SERVER = 13 << 3  # "N"
KEY_LEN = 32


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys checks its keys."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def decode_public(text: str, prefix: int) -> bytes | None:
    """The raw 32-byte public key of `text` if it is a valid public nkey of kind `prefix`."""
    if not isinstance(text, str) or not text.isascii() or len(text) != 56:
        return None
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 1 + KEY_LEN + 2 or raw[0] != prefix:
        return None
    body, check = raw[:-2], int.from_bytes(raw[-2:], "little")
    return body[1:] if crc16(body) == check else None


def is_public_user_key(text: str) -> bool:
    return decode_public(text, USER) is not None
