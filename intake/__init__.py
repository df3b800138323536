"""Intake: read the inbox exactly once, keep every message, classify it, hand it to the workflow.

sources (IMAP, Maildir) -> poller (raw store + ledger, then move) -> process (classify, handler).
"""
