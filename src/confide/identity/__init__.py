"""Directory login and single sign-on: a workspace's LDAP / Active Directory settings and OpenID
Connect providers, the accounts they created or matched, the group -> role mapping, and the periodic
re-check that ends the sessions of directory users who were disabled or removed. The protocols
themselves are in ``confide.auth.providers`` (not to be confused with ``confide.directory``, the
dashboard's cross-domain read models)."""
