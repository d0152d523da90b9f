"""The state store in Redis: the same layout as SQLite, for clusters whose state must survive the
loss of the head machine (the Redis that Ray's GCS fault tolerance uses can hold it too).

Two Redis keys per store: a hash ``<prefix>kv`` (key -> JSON) and a sorted set ``<prefix>keys``
(every key at score 0, so ``ZRANGEBYLEX`` lists a prefix in key order in O(log N + M) instead of a
``SCAN`` over the whole database). A write is one MULTI/EXEC transaction: Redis applies all of it
or, if the client dies before EXEC, none. Durability is Redis's: run it with ``appendonly yes``.

URL: ``redis://[:password@]host:port/db[?prefix=veo:]`` (``prefix`` is veo's; the rest is redis-py's).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from veo.adapters.store import Store, StoreError, StoreFull

# ZRANGEBYLEX then HMGET in one atomic step, in chunks (Lua's unpack takes a few thousand values)
_SCAN = """
local ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local vs = {}
for i = 1, #ks, 1000 do
  local part = redis.call('HMGET', KEYS[1], unpack(ks, i, math.min(i + 999, #ks)))
  for j = 1, #part do vs[#vs + 1] = part[j] end
end
return {ks, vs}
"""


def split_url(url: str) -> tuple[str, str]:
    """(the URL for redis-py, veo's key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "veo:")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class RedisStore(Store):
    def __init__(self, url: str) -> None:
        target, prefix = split_url(url)
        self.name = _safe(url)
        self._kv, self._keys = prefix + "kv", prefix + "keys"
        try:
            self._r = redis.Redis.from_url(target, socket_timeout=10, socket_connect_timeout=5,
                                           health_check_interval=30)
            self._r.ping()
            self._scan_script = self._r.register_script(_SCAN)
        except (redis.RedisError, ValueError) as e:
            raise self._error(e) from None

    def _get(self, key: str) -> str | None:
        try:
            raw = self._r.hget(self._kv, key)
        except redis.RedisError as e:
            raise self._error(e) from None
        return None if raw is None else raw.decode()

    def _scan(self, lo: str, hi: str | None, limit: int | None) -> list[tuple[str, str]]:
        upper = "+" if hi is None else "(" + hi
        try:
            keys, values = self._scan_script(keys=[self._kv, self._keys],
                                             args=["[" + lo, upper, -1 if limit is None else limit])
        except redis.RedisError as e:
            raise self._error(e) from None
        return [(k.decode(), v.decode()) for k, v in zip(keys, values) if v is not None]

    def _write(self, rows: dict[str, str], deletes: list[str]) -> None:
        pipe = self._r.pipeline(transaction=True)
        if rows:
            pipe.hset(self._kv, mapping=rows)
            pipe.zadd(self._keys, dict.fromkeys(rows, 0))
        if deletes:
            pipe.hdel(self._kv, *deletes)
            pipe.zrem(self._keys, *deletes)
        try:
            pipe.execute()
        except redis.RedisError as e:
            raise self._error(e) from None
        finally:
            pipe.reset()

    def _error(self, e: Exception) -> StoreError:
        # redis-py quotes the whole failed command (a 500-service write): keep only the reason
        text = str(e).split(" caused error: ", 1)[-1]
        if "OOM" in text or "maxmemory" in text:
            return StoreFull(f"state store {self.name} is full: {text} (raise Redis's maxmemory; "
                              "nothing was written)")
        if "MISCONF" in text:
            return StoreError(f"state store {self.name} cannot persist (is its disk full?): {text}")
        if isinstance(e, (redis.ConnectionError, redis.TimeoutError)):
            return StoreError(f"state store {self.name} is not reachable: {text}")
        return StoreError(f"state store {self.name} refused a request: {text}")

    def close(self) -> None:
        self._r.close()
