"""Who of an issue's audience is in its subject test, and which subject each one gets: a stable
hash of (issue, subscriber), the same in Python and in SQL on SQLite and PostgreSQL.

Stable: the same person always lands in the same place for the same issue, whatever order or
process reads them, so the split can be recomputed and checked; and the ledger writes what each
delivery got when it is made, so nothing reads the hash twice for one send. Integer arithmetic
only (SQLite has no XOR: a ^ b is (a | b) - (a & b) for these non-negative numbers), every
product below 2^63, so neither engine overflows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, cast, literal

# A subscriber or issue id is below 2^31 (numbers.MAX_ROW_ID): id * _A < 2^62.
_A = 1_103_515_245
_B = 40_503
_C = 12_345
_P = 2_147_483_647  # 2^31 - 1
_M = 1_597_334_677
_Q = 2_147_483_629  # a prime below 2^31

# The share is counted in ten-thousandths: a 1% share is 100 of every 10,000 people.
BUCKETS = 10_000


def stable_hash(issue_id: int, subscriber_id: int) -> int:
    """A number in [0, 2^31) for (issue, subscriber), spread evenly."""
    h = (subscriber_id * _A + issue_id * _B + _C) % _P
    h = ((h ^ (h >> 15)) * _M) % _Q
    return h ^ (h >> 13)


def in_share(issue_id: int, subscriber_id: int, share: int) -> bool:
    """True if the subscriber is in the test of `share` percent of the audience."""
    return stable_hash(issue_id, subscriber_id) % BUCKETS < share * BUCKETS // 100


def subject_number(issue_id: int, subscriber_id: int, subjects: int) -> int:
    """Which of `subjects` a subscriber in the test gets: 1 for the first."""
    return (stable_hash(issue_id, subscriber_id) // BUCKETS) % subjects + 1


def _xor(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return (a.op("|")(b)) - (a.op("&")(b))


def _shift(a: ColumnElement[Any], bits: int) -> ColumnElement[Any]:
    return a.op(">>")(literal(bits, Integer()))


def _big(value: int) -> ColumnElement[Any]:
    return literal(value, BigInteger())


def hash_sql(issue_id: int, subscriber_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """`stable_hash` as an SQL expression of a subscriber id column."""
    h = (cast(subscriber_id, BigInteger) * _big(_A) + _big(issue_id * _B + _C)) % _big(_P)
    h = (_xor(h, _shift(h, 15)) * _big(_M)) % _big(_Q)
    return _xor(h, _shift(h, 13))


def in_share_sql(
    issue_id: int, subscriber_id: ColumnElement[Any], share: int
) -> ColumnElement[bool]:
    return hash_sql(issue_id, subscriber_id) % _big(BUCKETS) < share * BUCKETS // 100


def subject_sql(
    issue_id: int, subscriber_id: ColumnElement[Any], subjects: int
) -> ColumnElement[int]:
    number = (hash_sql(issue_id, subscriber_id) // _big(BUCKETS)) % _big(subjects) + 1
    return cast(number, Integer)


def winner_sql(winner: int) -> ColumnElement[int]:
    """The winner's number, for every delivery of the rest."""
    return literal(winner, Integer())
