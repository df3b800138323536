"""A sender that runs again and again (`pcse run`'s outbox loop) keeps its SMTP connection
between runs: a reply sent at once does not wait for a new connection, TLS and sign-in.

A kept connection is used again only while it is fresh and answers NOOP; a server that
dropped it meanwhile costs a new connection, never a message or a retry.
"""

from __future__ import annotations

import time

from core.clock import FixedClock
from core.db import Database
from notifications.sender import KeptConnection, SendReport, send_pending
from notifications.sink import SmtpSink
from service.config import Config
from tests.test_smtp_delivery import queue, rows
from workflow.env import WorkflowEnv

# `env` is the workflow tests' (tests/fixtures/workflow.py), on a fixed clock; these tests
# send at most three emails to one address, under its hourly cap.


def later(env: WorkflowEnv, *, minutes: int) -> None:
    """Past the backoff of a row the server refused."""
    assert isinstance(env.clock, FixedClock)
    env.clock.advance(minutes=minutes)


def sessions(sink: SmtpSink) -> list[tuple[str, int] | None]:
    """The connection each message came over, in order."""
    return [m.peer for m in sink.messages]


def test_runs_in_a_row_share_one_connection(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    kept = KeptConnection()
    for _ in range(3):  # three replies, each committed and sent on its own
        queue(database, env, 1)
        assert send_pending(database, smtp_config, clock=env.clock, kept=kept).sent == 1
    assert len(set(sessions(smtp_sink))) == 1
    assert kept.reused == 2
    kept.close()
    assert kept.conn is None


def test_without_one_each_run_opens_its_own(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    """`pcse outbox send`, run once: its connection is closed as it ends."""
    for _ in range(2):
        queue(database, env, 1)
        assert send_pending(database, smtp_config, clock=env.clock).sent == 1
    assert len(set(sessions(smtp_sink))) == 2


def test_a_connection_idle_too_long_is_not_used_again(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    kept = KeptConnection(idle_seconds=0.2)
    queue(database, env, 1)
    send_pending(database, smtp_config, clock=env.clock, kept=kept)
    time.sleep(0.3)
    queue(database, env, 1)
    send_pending(database, smtp_config, clock=env.clock, kept=kept)
    kept.close()
    assert len(set(sessions(smtp_sink))) == 2
    assert kept.reused == 0


def test_a_connection_the_server_dropped_costs_a_new_one_and_nothing_else(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    kept = KeptConnection()
    queue(database, env, 1)
    send_pending(database, smtp_config, clock=env.clock, kept=kept)
    smtp_sink.stop()  # every connection it held is closed
    smtp_sink.start()
    queue(database, env, 2)

    report = send_pending(database, smtp_config, clock=env.clock, kept=kept)

    assert report == SendReport(2, 0, 0)
    # Sent on the new connection, with no failed try recorded (no retry, no backoff).
    assert all(r.status == "sent" and r.last_error is None for r in rows(database).values())
    assert len(smtp_sink.messages) == 3
    assert len(set(sessions(smtp_sink))) == 2
    kept.close()


def test_a_run_cut_short_by_the_server_keeps_nothing(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    """A 421 closes the connection: the next run opens a new one."""
    kept = KeptConnection()
    queue(database, env, 1)
    smtp_sink.fail_next(1, 421, "4.3.2 Shutting down", stage="data")
    send_pending(database, smtp_config, clock=env.clock, kept=kept)
    assert kept.conn is None
    smtp_sink.reset_faults()
    later(env, minutes=2)
    assert send_pending(database, smtp_config, clock=env.clock, kept=kept).sent == 1
    kept.close()


def test_a_connection_opened_too_long_ago_is_not_used_again(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    """Counted from when it was opened (an OAuth2 sign-in outlives its token otherwise)."""
    kept = KeptConnection(max_age_seconds=0.3)
    queue(database, env, 1)
    send_pending(database, smtp_config, clock=env.clock, kept=kept)
    time.sleep(0.2)
    queue(database, env, 1)
    send_pending(database, smtp_config, clock=env.clock, kept=kept)  # 0.2 s old: used again
    time.sleep(0.2)
    queue(database, env, 1)
    send_pending(database, smtp_config, clock=env.clock, kept=kept)  # 0.4 s old: a new one
    kept.close()
    assert kept.reused == 1
    peers = sessions(smtp_sink)
    assert peers[0] == peers[1] != peers[2]


def test_a_refusal_leaves_nothing_kept(
    database: Database,
    env: WorkflowEnv,
    smtp_sink: SmtpSink,
    smtp_config: Config,
) -> None:
    """The server may be refusing this session (too many messages on one connection, say):
    the next run starts on a new one rather than meet the refusal again."""
    kept = KeptConnection()
    queue(database, env, 2)
    smtp_sink.fail_next(1, 452, "4.5.3 Too many messages on this connection", stage="rcpt")
    report = send_pending(database, smtp_config, clock=env.clock, kept=kept)
    assert report.sent == 1 and report.pending == 1
    assert kept.conn is None
    later(env, minutes=2)
    assert send_pending(database, smtp_config, clock=env.clock, kept=kept).sent == 1
    kept.close()
    assert kept.reused == 0
    assert len(set(sessions(smtp_sink))) == 2
