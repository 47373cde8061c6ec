"""The one-month clock of a data-subject request and its extension (Art. 12(3), ADR 0029): pure
arithmetic on dates, no database; asked by the receipt, the extension, the views and the reminders.

"Within one month of receipt", extendable "by two further months":
``due_at = add_months(received_at, 1 + extended_months)``, always counted from the receipt, so an
extension never compounds a shortened month. A calendar month ends on the same day of the next
month; when that month is shorter, on its last day: received 31 January, due 28 February (29 in a
leap year); received 31 March, due 30 April; received 30 January, extended by two months, due 30
April. The time of day is kept (UTC).
"""

from __future__ import annotations

import calendar
from datetime import datetime

from confide.core import clock
from confide.privacy_requests.models import PrivacyRequest
from confide.privacy_requests.schemas import OPEN_STATES

MAX_EXTENSION_MONTHS = 2


def add_months(at: datetime, months: int) -> datetime:
    """``at`` plus whole calendar months; a day the target month lacks becomes its last day."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def due_date(received_at: datetime, extended_months: int = 0) -> datetime:
    return add_months(received_at, 1 + extended_months)


def is_overdue(row: PrivacyRequest, now: datetime | None = None) -> bool:
    return row.state in OPEN_STATES and (now or clock.now()) >= row.due_at
