"""The Redis projection of the schedule, shared by the admin (writer) and the beat (reader).

Keys, under a prefix (SCHEDULE_REDIS_PREFIX, default "jobsched"):

    {p}:due        sorted set: job id -> next fire time (epoch seconds); only active jobs
    {p}:job:{id}   JSON record of the job: name, task, queue, schedule, policies, revision
    {p}:revs       hash: job id -> revision of the record, to find what differs from the database
    {p}:wake       list the beat blocks on; the admin pushes to it after every change
    {p}:lease      "holder|token" of the beat that may send, with a short expiry
    {p}:fence      counter that hands out a new fencing token with every lease
    {p}:outbox     hash of claimed instants not yet recorded and sent ("id|score" -> holder)
    {p}:beats      hash: beat id -> JSON heartbeat (role, host, pid, last tick)
    {p}:meta       hash: built_at, revision; its absence means Redis lost the schedule

Due jobs are found with ZRANGEBYSCORE, O(log n + due). A claim is one Lua call for a batch:
it checks that the caller still holds the lease with the same fencing token and that each job's
score is still the instant being claimed, then moves each job to its next instant and notes the
instant in the outbox, all atomically; a second beat, or a leader that lost its lease, claims
nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

import redis

DEFAULT_PREFIX = "jobsched"
BLPOP_SLACK = 0.12  # Redis's timeout resolution (hz 10), with a margin

_CLAIM = """
local lease = redis.call('GET', KEYS[1])
if lease ~= ARGV[1] then return {} end
local claimed = {}
local i = 2
while i <= #ARGV do
  local id, score, nxt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('ZSCORE', KEYS[2], id)
  if current and tonumber(current) == tonumber(score) then
    if nxt == '' then redis.call('ZREM', KEYS[2], id)
    else redis.call('ZADD', KEYS[2], nxt, id) end
    redis.call('HSET', KEYS[3], id .. '|' .. score, ARGV[1])
    table.insert(claimed, id)
  end
  i = i + 3
end
return claimed
"""

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ScheduleStore:
    """Read and write the schedule projection in Redis."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX):
        self.redis = client
        p = self.prefix = prefix
        self.due_key, self.wake_key, self.lease_key = f"{p}:due", f"{p}:wake", f"{p}:lease"
        self.fence_key, self.outbox_key = f"{p}:fence", f"{p}:outbox"
        self.beats_key, self.meta_key, self.revs_key = f"{p}:beats", f"{p}:meta", f"{p}:revs"
        self._claim = self.redis.register_script(_CLAIM)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    @classmethod
    def from_config(cls, config) -> ScheduleStore:
        """Return a store on the Redis and prefix of a Flask config (the admin's and the beat's)."""
        client = redis.Redis.from_url(config["SCHEDULE_REDIS_URL"], socket_timeout=5,
                                      socket_connect_timeout=2, health_check_interval=10)
        return cls(client, prefix=config["SCHEDULE_REDIS_PREFIX"])

    def job_key(self, job_id: int | str) -> str:
        """Return the key of a job's record."""
        return f"{self.prefix}:job:{job_id}"

    # -- writing (the admin) -------------------------------------------------------------

    def put(self, record: dict[str, Any], next_ts: float | None, *, wake: bool = True) -> None:
        """Store a job's record and its next fire time (None: not due, paused or finished)."""
        pipe = self.redis.pipeline()
        self._put(pipe, record, next_ts)
        if wake:
            self._wake(pipe)
        pipe.execute()

    def _put(self, pipe, record: dict[str, Any], next_ts: float | None) -> None:
        pipe.set(self.job_key(record["id"]), json.dumps(record))
        pipe.hset(self.revs_key, record["id"], record["revision"])
        if next_ts is None:
            pipe.zrem(self.due_key, record["id"])
        else:
            pipe.zadd(self.due_key, {record["id"]: next_ts})

    def remove(self, job_id: int) -> None:
        """Forget a deleted job and wake the beat."""
        pipe = self.redis.pipeline()
        self._forget(pipe, job_id)
        self._wake(pipe)
        pipe.execute()

    def _forget(self, pipe, job_id) -> None:
        pipe.delete(self.job_key(job_id))
        pipe.zrem(self.due_key, job_id)
        pipe.hdel(self.revs_key, job_id)

    def _wake(self, pipe) -> None:
        # One pending token is enough: the beat re-reads the due set when it wakes.
        pipe.lpush(self.wake_key, 1)
        pipe.ltrim(self.wake_key, 0, 0)

    def wake(self) -> None:
        """Wake the beat so it looks at the due set now."""
        pipe = self.redis.pipeline()
        self._wake(pipe)
        pipe.execute()

    def revisions(self) -> dict[str, int]:
        """Return the revision of every job record in Redis, by job id."""
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.revs_key).items()}

    def apply(self, puts: Iterable[tuple[dict[str, Any], float | None]], removes: Iterable,
              meta: dict[str, Any] | None = None) -> int:
        """Write many records and removals in pipelined batches, then wake the beat."""
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for record, next_ts in puts:
            self._put(pipe, record, next_ts)
            count += 1
            if count % 2000 == 0:
                pipe.execute()
        for job_id in removes:
            self._forget(pipe, job_id)
        if meta:
            pipe.hset(self.meta_key, mapping=meta)
        self._wake(pipe)
        pipe.execute()
        return count

    def records(self, job_ids: list) -> dict[str, dict[str, Any]]:
        """Return the records of these jobs, by id (missing ones left out)."""
        if not job_ids:
            return {}
        values = self.redis.mget([self.job_key(i) for i in job_ids])
        return {str(i): json.loads(v) for i, v in zip(job_ids, values) if v is not None}

    def is_built(self) -> bool:
        """Return whether Redis still holds a schedule built from the database."""
        return bool(self.redis.exists(self.meta_key))

    def meta(self) -> dict[str, str]:
        """Return when and from which revision the schedule was last rebuilt."""
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(self.meta_key).items()}

    def score(self, job_id: int) -> float | None:
        """Return a job's next fire time in Redis, or None."""
        return self.redis.zscore(self.due_key, job_id)

    # -- reading and claiming (the beat) ---------------------------------------------------

    def due(self, now_ts: float, limit: int) -> list[tuple[str, float]]:
        """Return up to `limit` (job id, fire time) due at or before now, earliest first."""
        rows = self.redis.zrangebyscore(self.due_key, "-inf", now_ts, start=0, num=limit,
                                        withscores=True)
        return [(member.decode(), score) for member, score in rows]

    def next_due(self) -> float | None:
        """Return the earliest fire time in the schedule, or None if it is empty."""
        rows = self.redis.zrange(self.due_key, 0, 0, withscores=True)
        return rows[0][1] if rows else None

    def claim(self, lease: str, items: list[tuple[str, float, float | None]]) -> list[str]:
        """Atomically move due jobs to their next instants, if `lease` is still held."""
        if not items:
            return []
        args: list[Any] = [lease]
        for job_id, score, next_ts in items:
            args += [job_id, repr(score), "" if next_ts is None else repr(next_ts)]
        claimed = self._claim(keys=[self.lease_key, self.due_key, self.outbox_key], args=args)
        return [c.decode() for c in claimed]

    def outbox(self) -> list[tuple[str, float]]:
        """Return claimed instants not yet recorded and sent (left by a beat that died)."""
        result = []
        for field in self.redis.hkeys(self.outbox_key):
            job_id, score = field.decode().split("|")
            result.append((job_id, float(score)))
        return result

    def done(self, items: list[tuple[str, float]]) -> None:
        """Clear instants from the outbox once they are recorded and sent."""
        if items:
            self.redis.hdel(self.outbox_key, *[f"{job_id}|{score!r}" for job_id, score in items])

    def wait(self, timeout: float) -> bool:
        """Block until woken or the timeout passes; return whether a change woke us.

        Redis checks blocking timeouts only ten times a second, so BLPOP alone would fire up
        to 100 ms late: block until shortly before the deadline, then sleep the rest.
        """
        if timeout <= 0:
            return False
        if timeout > BLPOP_SLACK:  # on a timeout the caller works out what is left and waits again
            return self.redis.blpop([self.wake_key], timeout=timeout - BLPOP_SLACK) is not None
        time.sleep(timeout)
        return False

    # -- the lease --------------------------------------------------------------------------

    def acquire(self, holder: str, ttl_ms: int) -> str | None:
        """Take the lease if nobody holds it; return 'holder|token' or None."""
        value = self._acquire(keys=[self.lease_key, self.fence_key], args=[holder, ttl_ms])
        return value.decode() if value else None

    def renew(self, lease: str, ttl_ms: int) -> bool:
        """Extend the lease if we still hold it."""
        return bool(self._renew(keys=[self.lease_key], args=[lease, ttl_ms]))

    def release(self, lease: str) -> None:
        """Give the lease up if we still hold it."""
        self._release(keys=[self.lease_key], args=[lease])

    def lease(self) -> tuple[str | None, int]:
        """Return the current lease value and its remaining milliseconds."""
        pipe = self.redis.pipeline()
        pipe.get(self.lease_key)
        pipe.pttl(self.lease_key)
        value, ttl = pipe.execute()
        return (value.decode() if value else None), ttl

    # -- heartbeats -------------------------------------------------------------------------

    def heartbeat(self, beat_id: str, info: dict[str, Any]) -> None:
        """Publish a beat's state for the workers page."""
        self.redis.hset(self.beats_key, beat_id, json.dumps(info))

    def forget_beat(self, beat_id: str) -> None:
        """Remove a beat that stops cleanly."""
        self.redis.hdel(self.beats_key, beat_id)

    def beats(self) -> dict[str, dict[str, Any]]:
        """Return every beat's last heartbeat."""
        return {k.decode(): json.loads(v) for k, v in self.redis.hgetall(self.beats_key).items()}
