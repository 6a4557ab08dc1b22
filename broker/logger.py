"""Logs in nats-server's style: `[pid] 2006/01/02 15:04:05.000000 [INF] text`.

`-D` turns on debug (`[DBG]`), `-V` trace (`[TRC]`, protocol lines). Trace is a level below debug.
"""

from __future__ import annotations

import logging
import os
import sys
import time

TRACE = 5
logging.addLevelName(TRACE, "TRC")

_LEVEL_TAGS = {TRACE: "TRC", logging.DEBUG: "DBG", logging.INFO: "INF", logging.WARNING: "WRN",
               logging.ERROR: "ERR", logging.CRITICAL: "FTL"}

logger = logging.getLogger("broker")


class NatsFormatter(logging.Formatter):
    def __init__(self, logtime: bool = True, utc: bool = False) -> None:
        super().__init__()
        self.logtime = logtime
        self.utc = utc
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        tag = _LEVEL_TAGS.get(record.levelno, "INF")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if not self.logtime:
            return f"[{self.pid}] [{tag}] {text}"
        when = time.gmtime(record.created) if self.utc else time.localtime(record.created)
        micros = int((record.created % 1) * 1_000_000)
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", when)
        return f"[{self.pid}] {stamp}.{micros:06d} [{tag}] {text}"


def configure(debug: bool = False, trace: bool = False, log_file: str = "",
              logtime: bool = True, utc: bool = False) -> None:
    """Route the broker's logs to stderr (or `log_file`) in nats-server's format."""
    handler: logging.Handler
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(NatsFormatter(logtime, utc))
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.propagate = False
    set_levels(debug, trace)


def set_levels(debug: bool, trace: bool) -> None:
    if trace:
        logger.setLevel(TRACE)
    elif debug:
        logger.setLevel(logging.DEBUG)
    else:
        logger.setLevel(logging.INFO)


def tracing() -> bool:
    return logger.isEnabledFor(TRACE)


def trace(msg: str, *args: object) -> None:
    logger.log(TRACE, msg, *args)
