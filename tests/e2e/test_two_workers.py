"""Two `pcse run` workers on one mailbox and one PostgreSQL database share the work.

Each message is handled once and each reply sent once, whichever worker takes it.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from demo.mail import Story, performer_question
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from tests.e2e.conftest import INBOX_ADDRESS, Stack
from tests.e2e.process import wait_for
from workflow.models import Case

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e"),
]

COUNT = 40
HANDLED = re.compile(r"inbound (\d+) \[enquiries uid \d+\] new_request -> processed")


def questions() -> list[bytes]:
    return [
        performer_question(
            Story("performer", "question", f"Dr Test {n}", f"gp{n}@nhs.net", performer_question),
            INBOX_ADDRESS,
        ).as_bytes()
        for n in range(COUNT)
    ]


def test_two_workers_handle_each_message_once(stack: Stack) -> None:
    second = stack.another_worker("pcse-run-2")
    try:
        wait_for(
            lambda: "pcse run:" in second.log(),
            timeout=30,
            service=second,
            what="the second worker to start",
        )
        stack.deliver(questions())

        def handled() -> bool:
            with stack.db.transaction() as session:
                done = session.scalar(
                    sa.select(sa.func.count())
                    .select_from(InboundMessage)
                    .where(InboundMessage.status == "processed")
                )
                sent = session.scalar(
                    sa.select(sa.func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == "sent")
                )
            return done == COUNT and sent == COUNT and len(stack.sink.messages) >= COUNT

        wait_for(handled, timeout=60, service=stack.service, what="both workers to finish")
        assert second.alive()
    finally:
        assert second.stop() == 0
    with stack.db.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Case)) == COUNT
    recipients = sorted(r.rcpt_tos[0] for r in stack.sink.messages)
    assert recipients == sorted(f"gp{n}@nhs.net" for n in range(COUNT)), "one reply each"
    assert stack.account.count("INBOX") == 0
    assert stack.account.count("Processed") == COUNT
    # One log line per message, across the two workers, and none handled twice.
    handled_lines = [
        line
        for log in (stack.service.log(), second.log())
        for line in log.splitlines()
        if HANDLED.search(line)
    ]
    ids = [HANDLED.search(line).group(1) for line in handled_lines]
    assert len(ids) == COUNT and len(set(ids)) == COUNT
