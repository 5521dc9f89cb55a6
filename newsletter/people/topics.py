"""Topics from an import: the tags (or `topics` column) of the new people that name one of the
site's categories become their topics, as if they had ticked them (issue 17). Here, above both
owners: the list knows tags, the matchups know categories."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.matchups import service as matchups
from subscribers import service as subscribers
from subscribers.importer import ImportReport


def topics_from_import(session: Session, report: ImportReport) -> int:
    """Give the people this import created the topics their tags name; returns how many got
    topics (also kept in the report). A dry run writes nothing, so it gives none."""
    if report.dry_run:
        return 0
    tags = subscribers.tag_names_after(session, report.new_after_id)
    topic_of_tag = matchups.category_of(session, tags)
    if topic_of_tag:
        report.given_topics = subscribers.topics_from_tags(
            session, topic_of_tag, report.new_after_id
        )
    return report.given_topics
