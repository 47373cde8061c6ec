"""Data-subject requests (Art. 12-22, ADR 0029), one module per concern, from the bottom up:
``deadlines`` (the one-month clock), ``records`` (a request's data key, timeline step, locked
load), ``views`` (what staff, the shell and the requester see), ``intake`` (receipt and identity
verification), ``lifecycle`` (start, extend, complete, refuse, the linked export or certificate)
and ``reminders`` (the scheduler's due-soon and overdue mail)."""
