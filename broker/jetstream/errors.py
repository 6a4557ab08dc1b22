"""JetStream API errors: `{"code", "err_code", "description"}` exactly as nats-server sends them.

Codes and texts are nats-server's (`server/errors.json`); nats.py picks its exception class by
`code` and builds it from exactly these three keys, so nothing else may be added.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from broker.logger import logger
from storage import StoreError, StoreFull

_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class ApiError(Exception):
    code: int
    err_code: int
    description: str

    def to_json(self) -> dict[str, int | str]:
        return {"code": self.code, "err_code": self.err_code, "description": self.description}

    def __str__(self) -> str:
        return f"{self.description} ({self.err_code})"


def bad_request() -> ApiError:
    return ApiError(400, 10003, "bad request")


def cluster_required() -> ApiError:
    return ApiError(503, 10010, "JetStream clustering support required")


def insufficient_resources() -> ApiError:
    return ApiError(503, 10023, "insufficient resources")


def invalid_json(detail: str = "") -> ApiError:
    """400/10025. The text is nats-server 2.10's, without the decoder's detail (logged)."""
    if detail:
        logger.debug("JetStream API: invalid JSON: %s", detail)
    return ApiError(400, 10025, "invalid JSON")


def account_resources_exceeded() -> ApiError:
    """A publish that would take the account past its JetStream storage limit."""
    return ApiError(400, 10002, "resource limits exceeded for account")


def source_header_not_allowed() -> ApiError:
    """A client's publish carrying `Nats-Stream-Source` (nats-server 2.14+ refuses it)."""
    return ApiError(400, 10227, "message stream source header is not allowed")


def max_streams() -> ApiError:
    return ApiError(400, 10027, "maximum number of streams reached")


def memory_exceeded() -> ApiError:
    return ApiError(500, 10028, "insufficient memory resources available")


def no_message_found() -> ApiError:
    return ApiError(404, 10037, "no message found")


def not_enabled_for_account() -> ApiError:
    return ApiError(503, 10039, "JetStream not enabled for account")


def storage_exceeded() -> ApiError:
    return ApiError(500, 10047, "insufficient storage resources available")


def stream_invalid_config(detail: str) -> ApiError:
    return ApiError(500, 10052, detail)


def message_too_large() -> ApiError:
    return ApiError(400, 10054, "message size exceeds maximum allowed")


def stream_name_mismatch() -> ApiError:
    return ApiError(400, 10056, "stream name in subject does not match request")


def stream_name_in_use() -> ApiError:
    return ApiError(400, 10058, "stream name already in use with a different configuration")


def stream_not_found() -> ApiError:
    return ApiError(404, 10059, "stream not found")


def expected_stream_mismatch() -> ApiError:
    return ApiError(400, 10060, "expected stream does not match")


def subjects_overlap() -> ApiError:
    return ApiError(400, 10065, "subjects overlap with an existing stream")


def stream_msg_delete_failed(detail: str) -> ApiError:
    return ApiError(500, 10057, detail)


def wrong_last_msg_id(last: str) -> ApiError:
    return ApiError(400, 10070, f"wrong last msg ID: {last}")


def wrong_last_sequence(seq: int) -> ApiError:
    return ApiError(400, 10071, f"wrong last sequence: {seq}")


def replicas_not_supported() -> ApiError:
    return ApiError(500, 10074, "replicas > 1 not supported in non-clustered mode")


def not_enabled() -> ApiError:
    return ApiError(503, 10076, "JetStream not enabled")


def cluster_unavailable() -> ApiError:
    """No meta leader (or no stream / consumer leader) to take the request right now."""
    return ApiError(503, 10008, "JetStream system temporarily unavailable")


def store_failed(detail: str) -> ApiError:
    return ApiError(503, 10077, detail)


def publish_error(exc: ApiError | StoreError) -> ApiError:
    """The error a publish that was not stored is answered with (single server and cluster)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreFull):
        return storage_exceeded()
    return store_failed(str(exc))


def sync_failed(error: BaseException) -> ApiError:
    """A group commit's fsync failed. A full disk is nats-server's storage error (10047), as
    the write that found it full would be; anything else is a store failure."""
    if isinstance(error, StoreFull) or (isinstance(error, OSError) and error.errno in _FULL):
        return storage_exceeded()
    return store_failed(f"store sync failed: {error}")


def header_too_large() -> ApiError:
    return ApiError(400, 10097, "header size exceeds maximum allowed of 64k")


def stream_sealed() -> ApiError:
    return ApiError(400, 10109, "invalid operation on sealed stream")


def purge_failed(detail: str) -> ApiError:
    return ApiError(500, 10110, detail)


def rollup_failed(detail: str) -> ApiError:
    return ApiError(500, 10111, detail)


def stream_offline() -> ApiError:
    return ApiError(500, 10118, "stream is offline")


def too_many_subjects() -> ApiError:
    return ApiError(500, 10117, "subject details would exceed maximum allowed")


def replicas_negative() -> ApiError:
    return ApiError(400, 10133, "replicas count cannot be negative")


def ttl_invalid() -> ApiError:
    return ApiError(400, 10165, "invalid per-message TTL")


def ttl_disabled() -> ApiError:
    return ApiError(400, 10166, "per-message TTL is disabled")


def last_subject_seq_missing() -> ApiError:
    return ApiError(400, 10193, "missing sequence for expected last sequence per subject")


def mirror_not_updatable() -> ApiError:
    return ApiError(400, 10055, "stream mirror configuration can not be updated")


def not_supported(what: str) -> ApiError:
    """A feature this server does not implement yet, reported as a config error."""
    return ApiError(500, 10052, f"{what} is not supported by this server")
