"""A real OpenLDAP server (Debian's slapd) on loopback for the directory tests.

A throwaway ``slapd.conf`` in a temporary folder: core, cosine, inetorgperson and a small
Active Directory-style schema (``sAMAccountName``, ``userPrincipalName``, ``userAccountControl``,
with equality rules that work, unlike Debian's msuser.schema), back_mdb, the memberof overlay (so
``memberOf`` is kept on users as groups are written), a self-signed certificate made with
``cryptography`` for StartTLS (``ldap://``) and LDAPS (``ldaps://``), both on free ports.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SUFFIX = "dc=example,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"
SERVICE_DN = f"cn=confide-svc,ou=services,{SUFFIX}"
SERVICE_PW = "service-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
USER_FILTER = "(&(objectClass=inetOrgPerson)(|(mail={login})(sAMAccountName={login})(uid={login})))"

AD_SCHEMA = """
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.3 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'adUser' SUP top AUXILIARY
  MAY ( sAMAccountName $ userPrincipalName $ userAccountControl ) )
"""

CONF = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {dir}/ad.schema
pidfile {dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
TLSCertificateFile {dir}/server.crt
TLSCertificateKeyFile {dir}/server.key

database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/db
maxsize 10485760
overlay memberof
access to attrs=userPassword by anonymous auth by self write by * none
access to * by dn.exact="{service_dn}" read by self read by * none
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(folder: Path) -> str:
    """A server certificate for 127.0.0.1 and localhost; returns its PEM (the tests' CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (folder / "server.crt").write_text(pem)
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem


@dataclass
class Slapd:
    folder: Path
    port: int
    tls_port: int
    ca_pem: str
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)  # uid -> DN

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def admin(self) -> ldap3.Connection:
        return ldap3.Connection(
            ldap3.Server(self.url, get_info=ldap3.NONE), ROOT_DN, ROOT_PW, auto_bind=True, raise_exceptions=True
        )

    def add_user(
        self, uid: str, *, password: str, mail: str, name: str, sam: str | None = None, uac: int | None = None
    ) -> str:
        dn = f"uid={uid},{PEOPLE}"
        attrs: dict[str, object] = {
            "objectClass": ["inetOrgPerson", "adUser"],
            "uid": uid,
            "cn": name,
            "sn": name.split()[-1],
            "mail": mail,
            "userPassword": password,
        }
        if sam:
            attrs["sAMAccountName"] = sam
        if uac is not None:
            attrs["userAccountControl"] = str(uac)
        with self.admin() as conn:
            conn.add(dn, attributes=attrs)
        self.users[uid] = dn
        return dn

    def add_group(self, cn: str, member_dns: list[str]) -> str:
        dn = f"cn={cn},{GROUPS}"
        with self.admin() as conn:
            conn.add(dn, attributes={"objectClass": ["groupOfNames"], "cn": cn, "member": member_dns})
        return dn

    def set_uac(self, dn: str, value: int) -> None:
        with self.admin() as conn:
            conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(value)])]})

    def delete(self, dn: str) -> None:
        with self.admin() as conn:
            conn.delete(dn)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None


def start_slapd(folder: Path) -> Slapd:
    binary = shutil.which("slapd") or "/usr/sbin/slapd"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db").mkdir()
    (folder / "ad.schema").write_text(AD_SCHEMA)
    ca_pem = self_signed(folder)
    (folder / "slapd.conf").write_text(
        CONF.format(dir=folder, suffix=SUFFIX, root_dn=ROOT_DN, root_pw=ROOT_PW, service_dn=SERVICE_DN)
    )
    server = Slapd(folder, free_port(), free_port(), ca_pem)
    urls = f"{server.url}/ {server.ldaps_url}/"
    server.process = subprocess.Popen(
        [binary, "-d", "0", "-f", str(folder / "slapd.conf"), "-h", urls],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                break
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                err = server.process.stderr.read().decode() if server.process.stderr else ""
                raise RuntimeError(f"slapd did not start: {err[-2000:]}") from None
            time.sleep(0.02)
    with server.admin() as conn:
        conn.add(SUFFIX, attributes={"objectClass": ["dcObject", "organization"], "dc": "example", "o": "Example"})
        for ou in ("people", "groups", "services"):
            conn.add(f"ou={ou},{SUFFIX}", attributes={"objectClass": ["organizationalUnit"], "ou": ou})
        conn.add(
            SERVICE_DN,
            attributes={"objectClass": ["inetOrgPerson"], "cn": "confide-svc", "sn": "svc", "userPassword": SERVICE_PW},
        )
    return server
