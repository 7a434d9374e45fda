"""The DB-API 2.0 driver: ``connect(url)`` returns a sqlite3-compatible connection."""

from litemirror.client.dbapi import Connection, Cursor, apilevel, connect, paramstyle, threadsafety
from litemirror.client.row import Row
from litemirror.client.url import ConnectInfo, parse_url

__all__ = [
    "ConnectInfo",
    "Connection",
    "Cursor",
    "Row",
    "apilevel",
    "connect",
    "paramstyle",
    "parse_url",
    "threadsafety",
]
