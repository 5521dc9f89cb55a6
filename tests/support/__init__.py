"""Test doubles and data arrangers shared by the tests and the benchmarks (never in the wheel).

- `sendgrid_server`: a loopback Mail Send server that enforces SendGrid's documented rules,
  records what it accepted and injects faults; with `talk_back` it also posts what SendGrid's
  Event Webhook would say about each accepted recipient (`event_webhook`: signed, batched,
  late, duplicated, out of order, to loopback URLs only).
- `arrange`: the rows a test or benchmark starts from (subscribers, approved or sent issues).
"""
