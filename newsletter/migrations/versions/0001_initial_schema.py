"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.orm

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "approved",
                "scheduled",
                "sending",
                "paused",
                "sent",
                "cancelled",
                name="issue_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("cutoff_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("subject_override", sa.Text(), nullable=True),
        sa.Column("preheader_override", sa.Text(), nullable=True),
        sa.Column("intro_override", sa.Text(), nullable=True),
        sa.Column("rendered_subject", sa.Text(), nullable=True),
        sa.Column("rendered_preheader", sa.Text(), nullable=True),
        sa.Column("rendered_html", sa.Text(), nullable=True),
        sa.Column("rendered_text", sa.Text(), nullable=True),
        sa.Column("rendered_untracked_html", sa.Text(), nullable=True),
        sa.Column("rendered_untracked_text", sa.Text(), nullable=True),
        sa.Column("rendered_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("scheduled_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.Text(), nullable=True),
        sa.Column("send_started_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issues")),
        sa.UniqueConstraint("week", name=op.f("uq_issues_week")),
    )
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issues_scheduled_at"), ["scheduled_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_issues_status"), ["status"], unique=False)

    op.create_table(
        "matchups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("published_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("imported_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matchups")),
        sa.UniqueConstraint("slug", name=op.f("uq_matchups_slug")),
    )
    with op.batch_alter_table("matchups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_matchups_published_at"), ["published_at"], unique=False
        )

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "active",
                "unsubscribed",
                "bounced",
                "complained",
                name="subscriber_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("consent_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consent_ip", sa.String(length=64), nullable=True),
        sa.Column("consent_method", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirm_sent_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("tracking_opt_out", sa.Boolean(), nullable=False),
        sa.Column("created_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("email", name=op.f("uq_subscribers_email")),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscribers_status"), ["status"], unique=False)

    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email_hash", name=op.f("uq_suppressions_email_hash")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin", "editor", name="role", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("api_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("api_token_hash", name=op.f("uq_users_api_token_hash")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "issue_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("matchup_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_links_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["matchup_id"],
            ["matchups.id"],
            name=op.f("fk_issue_links_matchup_id_matchups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_links")),
        sa.UniqueConstraint("issue_id", "key", name=op.f("uq_issue_links_issue_id_key")),
    )
    with op.batch_alter_table("issue_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_links_issue_id"), ["issue_id"], unique=False)

    op.create_table(
        "issue_matchups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("matchup_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("position_override", sa.Integer(), nullable=True),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("summary_override", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_matchups_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["matchup_id"],
            ["matchups.id"],
            name=op.f("fk_issue_matchups_matchup_id_matchups"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_matchups")),
        sa.UniqueConstraint(
            "issue_id", "matchup_id", name=op.f("uq_issue_matchups_issue_id_matchup_id")
        ),
    )
    with op.batch_alter_table("issue_matchups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_matchups_issue_id"), ["issue_id"], unique=False)

    op.create_table(
        "matchup_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matchup_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.Integer(), nullable=False),
        sa.Column("tool", sa.Integer(), nullable=False),
        sa.Column(
            "lens",
            sa.Enum(
                "builder",
                "skeptic",
                "futurist",
                "money",
                "other",
                name="lens",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.CheckConstraint("reviewer >= 1", name=op.f("ck_matchup_reviews_reviewer_1_based")),
        sa.CheckConstraint("tool IN (0, 1)", name=op.f("ck_matchup_reviews_tool_0_or_1")),
        sa.ForeignKeyConstraint(
            ["matchup_id"],
            ["matchups.id"],
            name=op.f("fk_matchup_reviews_matchup_id_matchups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matchup_reviews")),
        sa.UniqueConstraint(
            "matchup_id",
            "reviewer",
            "tool",
            name=op.f("uq_matchup_reviews_matchup_id_reviewer_tool"),
        ),
    )
    op.create_table(
        "matchup_tools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matchup_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("tagline", sa.Text(), nullable=False),
        sa.Column("panel_ship_pct", sa.Integer(), nullable=False),
        sa.Column("community_pct", sa.Integer(), nullable=True),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "community_pct IS NULL OR community_pct BETWEEN 0 AND 100",
            name=op.f("ck_matchup_tools_community_pct_range"),
        ),
        sa.CheckConstraint(
            "panel_ship_pct BETWEEN 0 AND 100", name=op.f("ck_matchup_tools_panel_pct_range")
        ),
        sa.CheckConstraint("position IN (0, 1)", name=op.f("ck_matchup_tools_position_0_or_1")),
        sa.ForeignKeyConstraint(
            ["matchup_id"],
            ["matchups.id"],
            name=op.f("fk_matchup_tools_matchup_id_matchups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matchup_tools")),
        sa.UniqueConstraint(
            "matchup_id", "position", name=op.f("uq_matchup_tools_matchup_id_position")
        ),
    )
    op.create_table(
        "scheduler_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("slot_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "done",
                "failed",
                "missed",
                name="scheduler_run_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("send_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("settled_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_scheduler_runs_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_runs")),
        sa.UniqueConstraint("run_key", name=op.f("uq_scheduler_runs_run_key")),
    )
    with op.batch_alter_table("scheduler_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scheduler_runs_send_at"), ["send_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_scheduler_runs_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_scheduler_runs_week"), ["week"], unique=False)

    op.create_table(
        "send_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "in_flight",
                "done",
                name="batch_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_attempt_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_send_batches_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_batches")),
    )
    with op.batch_alter_table("send_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_send_batches_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_send_batches_status"), ["status"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "in_flight",
                "sent",
                "failed",
                "uncertain",
                "skipped",
                name="delivery_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["send_batches.id"],
            name=op.f("fk_deliveries_batch_id_send_batches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_deliveries_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_deliveries_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "issue_id", "subscriber_id", name=op.f("uq_deliveries_issue_id_subscriber_id")
        ),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deliveries_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deliveries_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "tracking_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "processed",
                "delivered",
                "deferred",
                "bounced",
                "dropped",
                "opened",
                "clicked",
                "complained",
                "unsubscribed",
                "resubscribed",
                "voted",
                "unknown",
                name="event_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("provider_event_id", sa.String(length=128), nullable=True),
        sa.Column("provider_type", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("matchup_id", sa.Integer(), nullable=True),
        sa.Column("link_key", sa.String(length=64), nullable=True),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_tracking_events_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_tracking_events_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["matchup_id"],
            ["matchups.id"],
            name=op.f("fk_tracking_events_matchup_id_matchups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
        sa.UniqueConstraint("provider_event_id", name=op.f("uq_tracking_events_provider_event_id")),
    )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracking_events_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tracking_events_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(
            "ix_tracking_events_issue_type_delivery",
            ["issue_id", "type", "delivery_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_tracking_events_type"), ["type"], unique=False)

    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("matchup_id", sa.Integer(), nullable=False),
        sa.Column("tool", sa.Integer(), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("voted_at", newsletter.orm.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("tool IN (0, 1)", name=op.f("ck_votes_tool_0_or_1")),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_votes_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["matchup_id"],
            ["matchups.id"],
            name=op.f("fk_votes_matchup_id_matchups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_votes_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
        sa.UniqueConstraint(
            "delivery_id", "matchup_id", name=op.f("uq_votes_delivery_id_matchup_id")
        ),
    )
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_votes_matchup_id"), ["matchup_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_votes_subscriber_id"), ["subscriber_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_votes_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_votes_matchup_id"))

    op.drop_table("votes")
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_events_type"))
        batch_op.drop_index("ix_tracking_events_issue_type_delivery")
        batch_op.drop_index(batch_op.f("ix_tracking_events_issue_id"))
        batch_op.drop_index(batch_op.f("ix_tracking_events_delivery_id"))

    op.drop_table("tracking_events")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_issue_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_batch_id"))

    op.drop_table("deliveries")
    with op.batch_alter_table("send_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_batches_status"))
        batch_op.drop_index(batch_op.f("ix_send_batches_issue_id"))

    op.drop_table("send_batches")
    with op.batch_alter_table("scheduler_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduler_runs_week"))
        batch_op.drop_index(batch_op.f("ix_scheduler_runs_status"))
        batch_op.drop_index(batch_op.f("ix_scheduler_runs_send_at"))

    op.drop_table("scheduler_runs")
    op.drop_table("matchup_tools")
    op.drop_table("matchup_reviews")
    with op.batch_alter_table("issue_matchups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_matchups_issue_id"))

    op.drop_table("issue_matchups")
    with op.batch_alter_table("issue_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_links_issue_id"))

    op.drop_table("issue_links")
    op.drop_table("users")
    op.drop_table("suppressions")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscribers_status"))

    op.drop_table("subscribers")
    with op.batch_alter_table("matchups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_matchups_published_at"))

    op.drop_table("matchups")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issues_status"))
        batch_op.drop_index(batch_op.f("ix_issues_scheduled_at"))

    op.drop_table("issues")
