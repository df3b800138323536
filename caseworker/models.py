"""Caseworker accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamp
from core.timeutil import utcnow


class Caseworker(Base):
    __tablename__ = "caseworkers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_supervisor: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Carried in the session cookie; raised at sign-out, so that a copy of a cookie
    # stops working when its owner signs out.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when a supervisor resets the password: every page asks for a new one first.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
