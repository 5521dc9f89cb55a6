"""Limits that hold across processes and machines, kept in the database: attempt counters
(logins, sign-ups) and the send's token bucket.

Counted in memory, N web processes gave an attacker N times the tries and N send workers sent
at N times the configured rate. Here every process meets at the same rows, and each change is
atomic on both engines:

- An attempt is counted in one short transaction that first writes the key's row
  (`INSERT … ON CONFLICT DO NOTHING`): on SQLite that write takes the database's write lock
  for the rest of the transaction, on PostgreSQL the `SELECT … FOR UPDATE` that follows locks
  the rows (taken in key order, so two requests never deadlock). The check and the count are
  one step: two processes cannot both take the last try.
- The send rate is one row (`rate_buckets`) holding the time at which the next email may go
  (a generic cell rate: a bucket that saves up no burst while idle). A worker reserves a whole
  request's worth of emails in one `INSERT … ON CONFLICT DO UPDATE … RETURNING` and sleeps
  until its slot: one round trip per batch of up to 1,000, never one per email. PostgreSQL's
  own clock (`statement_timestamp()`) is the time, so workers on machines whose clocks differ
  still share one rate.

Times are epoch seconds (floats), not timestamps: the arithmetic happens inside the statement.
Rows of attempt keys nobody tried for a window are deleted by `delete_stale_attempts`
(`newsletter maintenance`, daily from the scheduler).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Float, String, Text, delete, extract, func, literal, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from newsletter.orm import Base, upsert_insert

SEND_BUCKET = "send"


class AttemptCounter(Base):
    """The attempts of one key (a client address or an account) in its sliding window."""

    __tablename__ = "limit_attempts"

    # A 128-bit digest of what is counted ("ip:…", "acct:…"), hex: a 900 KB "address" costs
    # what a short one does, and nothing anyone typed is stored.
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The attempt times still inside the window, oldest first, space-separated epoch seconds;
    # never more than the key's limit of them.
    times: Mapped[str] = mapped_column(Text, default="")
    # The newest time + the window: after this the row says nothing and may be deleted.
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class RateBucket(Base):
    """A rate shared by every process: the moment (epoch seconds) the next email may go."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    free_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class Key:
    digest: str
    limit: int


def _parse(times: str, cut: float) -> list[float]:
    return [t for t in (float(x) for x in times.split()) if t > cut]


def _lock(session: Session, digests: list[str]) -> dict[str, str]:
    """The keys' rows, created if absent and locked until the transaction ends."""
    insert = upsert_insert(session, AttemptCounter).values(
        [{"key": d, "times": "", "expires_at": 0.0} for d in digests]
    )
    session.execute(insert.on_conflict_do_nothing(index_elements=["key"]))
    query = select(AttemptCounter.key, AttemptCounter.times).where(AttemptCounter.key.in_(digests))
    if session.get_bind().dialect.name == "postgresql":
        query = query.order_by(AttemptCounter.key).with_for_update()
    return {key: times for key, times in session.execute(query)}


def _wait(times: list[float], limit: int, window: float, now: float) -> int:
    if len(times) < limit:
        return 0
    return max(1, int(times[-limit] + window - now) + 1)


def _write(session: Session, digest: str, times: list[float], window: float) -> None:
    session.execute(
        update(AttemptCounter)
        .where(AttemptCounter.key == digest)
        .values(
            times=" ".join(repr(t) for t in times),
            expires_at=(times[-1] + window) if times else 0.0,
        )
    )


def attempt(session: Session, keys: Sequence[Key], window: float, now: float) -> int:
    """Count one attempt against every key, unless one of them is at its limit: then nothing
    is counted and the seconds to wait are returned (0: counted, go ahead)."""
    ordered = sorted(keys, key=lambda k: k.digest)
    held = _lock(session, [k.digest for k in ordered])
    cut = now - window
    current = {k.digest: _parse(held.get(k.digest, ""), cut) for k in ordered}
    wait = max(_wait(current[k.digest], k.limit, window, now) for k in ordered)
    if wait:
        return wait
    for k in ordered:
        times = [*current[k.digest], now][-k.limit :]
        _write(session, k.digest, times, window)
    return 0


def record(session: Session, keys: Sequence[Key], window: float, now: float) -> None:
    """Count an attempt whatever the limits say (a failure seen after the fact)."""
    ordered = sorted(keys, key=lambda k: k.digest)
    held = _lock(session, [k.digest for k in ordered])
    for k in ordered:
        times = [*_parse(held.get(k.digest, ""), now - window), now][-k.limit :]
        _write(session, k.digest, times, window)


def retry_after(session: Session, keys: Sequence[Key], window: float, now: float) -> int:
    """Seconds until an attempt may be made (0: now); reads only."""
    query = select(AttemptCounter.key, AttemptCounter.times).where(
        AttemptCounter.key.in_([k.digest for k in keys])
    )
    rows = {key: times for key, times in session.execute(query)}
    cut = now - window
    return max(_wait(_parse(rows.get(k.digest, ""), cut), k.limit, window, now) for k in keys)


def forget(session: Session, digest: str) -> None:
    session.execute(delete(AttemptCounter).where(AttemptCounter.key == digest))


def give_back(session: Session, key: Key, window: float, now: float) -> None:
    """Un-count the newest attempt of a key (an attempt that turned out to be no failure)."""
    held = _lock(session, [key.digest])
    times = _parse(held.get(key.digest, ""), now - window)
    _write(session, key.digest, times[:-1], window)


def stale_attempts(session: Session, now: float) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(AttemptCounter).where(AttemptCounter.expires_at < now)
        )
        or 0
    )


def delete_stale_attempts(session: Session, now: float, limit: int = 10_000) -> int:
    """Delete up to `limit` rows whose window has passed; how many went."""
    doomed = (
        select(AttemptCounter.key)
        .where(AttemptCounter.expires_at < now)
        .order_by(AttemptCounter.expires_at)
        .limit(limit)
        .scalar_subquery()
    )
    result = session.execute(
        delete(AttemptCounter)
        .where(AttemptCounter.key.in_(doomed))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _now(session: Session, now: float | None) -> ColumnElement[float]:
    if now is not None:
        return literal(now, Float)
    if session.get_bind().dialect.name == "postgresql":
        # One clock for every machine: the database's, fixed for the statement.
        return extract("epoch", func.statement_timestamp()).cast(Float)
    return literal(time.time(), Float)


def reserve(
    session: Session, name: str, amount: float, per_second: float, now: float | None = None
) -> float:
    """Reserve `amount` (emails) of the rate `per_second` shared under `name`: the seconds to
    wait before using them (0 or less: at once). One statement, atomic on both engines."""
    cost = amount / per_second
    clock = _now(session, now)
    stmt = upsert_insert(session, RateBucket).values(name=name, free_at=clock + cost)
    later = (
        func.greatest(RateBucket.free_at, clock)
        if session.get_bind().dialect.name == "postgresql"
        else func.max(RateBucket.free_at, clock)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={"free_at": later + cost}
    ).returning(RateBucket.free_at, clock)
    free_at, at = session.execute(stmt).one()
    return float(free_at) - cost - float(at)


def release(session: Session, name: str, amount: float, per_second: float) -> None:
    """Hand back what a reservation paid for and did not use (a short or missing batch)."""
    if amount > 0:
        session.execute(
            update(RateBucket)
            .where(RateBucket.name == name)
            .values(free_at=RateBucket.free_at - amount / per_second)
        )
