"""End-to-end tests: `pcse run` as a process against Dovecot, PostgreSQL and an SMTP sink."""
