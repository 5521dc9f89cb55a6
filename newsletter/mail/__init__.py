"""Mail without a database: the message, the transports (outbox, SendGrid) and the choice."""
