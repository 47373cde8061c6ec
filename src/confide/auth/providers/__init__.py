"""First factors other than the local password: an LDAP / Active Directory client (``ldap``) and an
OpenID Connect relying party (``oidc``). Protocol only: no database, no accounts. The directory
settings, the accounts they create and the re-checks live in ``confide.identity``."""
