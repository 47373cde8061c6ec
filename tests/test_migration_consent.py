"""0012_consent: every workspace gets the default purposes, each site's purpose keys become
workspace purposes, and visitors.consents lands in the ledger (source "import"); on both databases.
The imported rows then obey the ledger's append-only triggers."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from confide.core.migrate import upgrade
from tests.test_migration_roles import _sql
from tests.test_migrations import _in_thread, empty_db  # noqa: F401 - the fixture


def test_consent_migration_seeds_and_imports(empty_db: str) -> None:  # noqa: F811
    _in_thread(upgrade, empty_db, "0011_login_limits")
    _in_thread(
        _sql, empty_db,
        "INSERT INTO workspaces (id, name, created_at) VALUES ('w1', 'Shop', '2026-01-01 00:00:00')",
        "INSERT INTO sites (id, workspace_id, name, site_key, allowed_origins, prechat_fields, purposes,"
        " privacy_policy_url, greeting, color, timezone, created_at) VALUES ('s1', 'w1', 'Shop', 'k1', '[]', '[]',"
        " '[{\"key\": \"marketing\", \"label\": \"News by e-mail\", \"version\": \"v1\"}]', '', '', '#2563eb',"
        " 'UTC', '2026-01-01 00:00:00')",
        "INSERT INTO visitors (id, workspace_id, site_id, consents, created_at) VALUES"
        " ('v1', 'w1', 's1', '{\"marketing\": {\"granted\": true, \"version\": \"v1\","
        " \"at\": \"2026-01-02T10:00:00+00:00\"}}', '2026-01-01 00:00:00'),"
        " ('v2', 'w1', 's1', '{\"marketing\": {\"granted\": false, \"version\": \"v1\"}}', '2026-01-01 00:00:00'),"
        " ('v3', 'w1', 's1', '{}', '2026-01-01 00:00:00')",
    )
    _in_thread(upgrade, empty_db)
    keys = _in_thread(_sql, empty_db, "SELECT key, lawful_basis, required FROM consent_purposes ORDER BY key")
    assert [k for k, _, _ in keys] == ["activity_tracking", "marketing", "marketing_email", "newsletter",
                                       "profiling", "support"]
    assert ("support", "contract", True) in [(k, b, bool(r)) for k, b, r in keys]
    notice = _in_thread(_sql, empty_db, "SELECT n.text, n.version FROM consent_notices n JOIN consent_purposes p"
                                        " ON p.id = n.purpose_id WHERE p.key = 'marketing'")
    assert notice == [("News by e-mail", 1)]
    rows = _in_thread(_sql, empty_db, "SELECT subject_id, purpose, granted, source, notice_version, site_id"
                                      " FROM consent_records ORDER BY subject_id")
    assert [(s, p, bool(g), src, v, site) for s, p, g, src, v, site in rows] == [
        ("v1", "marketing", True, "import", 1, "s1"), ("v2", "marketing", False, "import", 1, "s1")]
    with pytest.raises(DBAPIError):
        _in_thread(_sql, empty_db, "UPDATE consent_records SET granted = false")
    with pytest.raises(DBAPIError):
        _in_thread(_sql, empty_db, "DELETE FROM consent_records")
