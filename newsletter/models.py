"""Every table, imported in one place so the metadata (and Alembic) sees the whole schema."""

from newsletter.accounts.models import Role, User
from newsletter.audience.models import Segment  # noqa: F401  (registers the table)
from newsletter.instance import InstanceState  # noqa: F401  (registers the table)
from newsletter.issues.models import Issue, IssueLink, IssueMatchup, IssueStatus, SubjectTest
from newsletter.limits import AttemptCounter, RateBucket  # noqa: F401  (registers the tables)
from newsletter.matchups.models import Lens, Matchup, MatchupReview, MatchupTool
from newsletter.orm import Base
from newsletter.scheduling.models import SchedulerRun  # noqa: F401  (registers the table)
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from newsletter.tracking.models import EventType, TrackingEvent, TrackingFirst, TrackingRollup
from newsletter.votes.models import Vote
from subscribers.models import Subscriber, SubscriberStatus, Suppression

__all__ = [
    "Base",
    "BatchStatus",
    "Delivery",
    "DeliveryStatus",
    "EventType",
    "Issue",
    "IssueLink",
    "IssueMatchup",
    "IssueStatus",
    "Lens",
    "Matchup",
    "MatchupReview",
    "MatchupTool",
    "Role",
    "SendBatch",
    "SubjectTest",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "TrackingEvent",
    "TrackingFirst",
    "TrackingRollup",
    "User",
    "Vote",
]
