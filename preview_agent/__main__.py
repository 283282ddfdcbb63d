"""``python -m preview_agent``: configure logging, read the environment, run until exit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime

from .config import ConfigError, load_config

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LOG_FORMAT", "json") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), handlers=[handler])
    # sync.py owns reconnection; the client's own "failed permanently" errors would mislead.
    logging.getLogger("realtime").setLevel(logging.CRITICAL)


def main() -> int:
    configure_logging()
    try:
        config = load_config()
    except ConfigError as error:
        logging.getLogger("preview_agent").error("invalid configuration", extra={"reason": str(error)})
        return 2
    from .app import Agent  # after logging, so import-time messages are formatted too

    return asyncio.run(Agent(config).run())


if __name__ == "__main__":
    sys.exit(main())
