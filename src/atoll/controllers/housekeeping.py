"""Records that only grow: the audit log past its retention (ATOLL_AUDIT_RETENTION_DAYS) and
SSO sign-ins that never came back or were used long ago. Removed once an hour."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete

from atoll.domain import audit
from atoll.store.db import Database
from atoll.store.tables import SsoSignIn, utcnow

log = logging.getLogger("atoll.housekeeping")
INTERVAL_S = 3600.0
SIGN_IN_KEEP = timedelta(hours=1)  # past its expiry: a late callback still says "expired", not "unknown"


class Housekeeping:
    name = "housekeeping"

    def __init__(self, db: Database, audit_retention_days: int) -> None:
        self.db = db
        self.retention_days = audit_retention_days

    def tick(self) -> None:
        with self.db.transaction() as s:
            pruned = audit.prune(s, self.retention_days)
            s.execute(delete(SsoSignIn).where(SsoSignIn.expires_at < utcnow() - SIGN_IN_KEEP))
        if pruned:
            log.info("audit log: %d records older than %d days removed", pruned, self.retention_days)

    def interval(self, base: float) -> float:
        return INTERVAL_S

    def close(self) -> None:
        pass
