"""Replies from templates: the outbox written with each case change, and SMTP delivery."""
