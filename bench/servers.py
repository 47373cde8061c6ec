"""Starting, preparing, measuring and stopping the servers under test (Confide and the raw relay)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
ADMIN_EMAIL = "admin@bench.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def ws_impl() -> str:
    """``websockets-sansio`` when this uvicorn knows it, else ``websockets``."""
    try:
        from uvicorn.config import WS_PROTOCOLS
    except ImportError:  # pragma: no cover
        return "websockets"
    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"


def uvicorn_options() -> list[str]:
    """The options ``confide serve`` passes to uvicorn (src/confide/cli/main.py), as CLI flags."""
    return ["--ws", ws_impl(), "--loop", "uvloop", "--http", "httptools",
            "--ws-per-message-deflate", "false", "--workers", "1", "--ws-max-size", "16384",
            "--no-proxy-headers", "--no-server-header"]


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# What a failing step of the harness raises (a refused or dead server, a bad answer, a timeout):
# caught where one part may fail without losing the others' figures.
HARNESS_ERRORS: tuple[type[Exception], ...] = (
    OSError, RuntimeError, ValueError, LookupError, TypeError, AssertionError,
    httpx.HTTPError, subprocess.SubprocessError,
)

BOOST_NICE: int | None = None  # set by run.py: CPU priority given to every server and generator


def set_boost(nice: int | None) -> None:
    global BOOST_NICE
    BOOST_NICE = nice


def boost(pid: int) -> bool:
    """Give ``pid`` the ``BOOST_NICE`` priority. Each server and generator leads its own session, so
    with autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) its *autogroup* nice is
    what counts against other sessions on the machine; set both. Needs root; False when refused."""
    if BOOST_NICE is None:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, pid, BOOST_NICE)
        group = Path(f"/proc/{pid}/autogroup")
        if group.exists():
            group.write_text(str(BOOST_NICE))
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# -- /proc readings -----------------------------------------------------------------------
def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else kb * 1024


def pss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (all its threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def nofile_limit(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError):
        return None
    return None


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = {root}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def listener_pid(port: int, root: int) -> int | None:
    """The process (``root`` or one of its descendants) that holds the listening socket."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
            inodes.add(parts[9])
    for pid in sorted(_descendants(root)):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None


# -- server processes ---------------------------------------------------------------------
@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    site_key: str = "bench"
    admin_password: str = ""
    pid: int = 0  # the process serving the port
    notes: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # Confide: its environment (data folder, settings)

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                pid = listener_pid(self.port, self.proc.pid)
                self.pid = pid or self.proc.pid
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not listen on {self.port} within {timeout}s; log:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        else:
            # the leader is gone; make sure no stray child of its group survives
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def _spawn(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    boost(proc.pid)
    return proc


def start_raw_relay(workdir: Path) -> Server:
    return _start_uvicorn_app("raw", "bench.raw_relay:app", workdir)


def start_socketio_relay(workdir: Path) -> Server:
    """The python-socketio peer (bench/socketio_relay.py), with the same uvicorn options."""
    return _start_uvicorn_app("socketio", "bench.socketio_relay:app", workdir)


def _start_uvicorn_app(name: str, app: str, workdir: Path) -> Server:
    port = free_port()
    log_path = workdir / f"{name}_relay.log"
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
           *uvicorn_options(), "--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = Server(name, port, _spawn(cmd, env, log_path, ROOT), log_path, workdir)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def confide_env(data_dir: Path, port: int, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIDE_")}
    env.update({
        "CONFIDE_DATA_DIR": str(data_dir), "CONFIDE_PORT": str(port), "CONFIDE_HOST": HOST,
        "CONFIDE_ADMIN_EMAIL": ADMIN_EMAIL, "CONFIDE_ADMIN_PASSWORD": password,
        "CONFIDE_VISITOR_MSG_RATE": "100000", "CONFIDE_VISITOR_MSG_BURST": "100000",
        # Every generated client comes from 127.0.0.1: no per-address caps in the benchmark.
        "CONFIDE_MAX_SOCKETS_PER_ADDRESS": "0", "CONFIDE_CONVERSATIONS_PER_ADDRESS_PER_HOUR": "0",
        "CONFIDE_LOG_LEVEL": "warning", "CONFIDE_ARGON2_FAST": "1",
        # The idle phase creates thousands of queued chats minutes before their sockets open: the
        # periodic sweeps must not close them as abandoned or tell them "unanswered" meanwhile
        # (each such change republishes queue positions to the other waiting visitors).
        "CONFIDE_VISITOR_ABANDON_S": "86400", "CONFIDE_UNANSWERED_AFTER_S": "86400",
    })
    return env


def confide_bin() -> str:
    exe = VENV_BIN / "confide"
    if exe.exists():
        return str(exe)
    found = shutil.which("confide")
    if not found:
        raise RuntimeError("the `confide` command is not installed in this environment")
    return found


def start_confide(workdir: Path) -> Server:
    """``confide migrate``, ``confide demo`` and ``confide serve`` in a fresh data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="confide-data-", dir=workdir))
    port = free_port()
    password = "bench-" + secrets.token_urlsafe(24)
    env = confide_env(data_dir, port, password)
    log_path = workdir / f"confide-{port}.log"
    exe = confide_bin()
    for step in ("migrate", "demo"):
        r = subprocess.run([exe, step], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           check=False)
        with log_path.open("a") as log:
            log.write(f"$ confide {step}\n{r.stdout}{r.stderr}\n")
        if r.returncode != 0:
            raise RuntimeError(f"confide {step} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        if step == "demo":
            m = re.search(r"^\s*site_key:\s*(\S+)", r.stdout, re.MULTILINE)
            if not m:
                raise RuntimeError(f"confide demo printed no 'site_key:' line:\n{r.stdout}")
            site_key = m.group(1)
    server = Server("confide", port, _spawn([exe, "serve"], env, log_path, ROOT), log_path, workdir,
                    site_key=site_key, admin_password=password, env=env)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def prefill_confide(server: Server, messages: int, limit_s: float = 240.0) -> dict[str, Any]:
    """Top the running (idle) server's database up to ``messages`` stored messages (bench/prefill.py)."""
    env = {**server.env, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.prefill", "--messages", str(messages), "--site", server.site_key,
           "--limit-s", str(limit_s)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=limit_s + 120, check=False)
    with server.log_path.open("a") as log:
        log.write(f"$ python -m bench.prefill --messages {messages}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:
        raise RuntimeError(f"prefill failed ({r.returncode}):\n{r.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


# -- Confide preparation through the admin API ---------------------------------------------
def prepare_confide(server: Server, n_operators: int, max_chats: int, strategy: str = "manual",
                    own_department: bool = False) -> list[dict[str, str]]:
    """Put the demo site's departments in ``strategy`` and create operators; return their logins.

    With ``own_department`` the operators are put in a new department of the demo site instead:
    the site counts as staffed (POST .../conversations is not refused as offline) while the
    conversations, which go to the site's first department, queue where no operator socket
    is told about them (no queue broadcasts, no offers).
    """
    headers = {"Origin": server.origin}
    with httpx.Client(base_url=server.base_url, timeout=60, headers=headers) as http:
        r = http.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": server.admin_password})
        _check(r, "admin login")
        sites = _check(http.get("/api/v1/sites"), "list sites")
        site = next((s for s in _items(sites) if s.get("site_key") == server.site_key), None)
        if site is None:
            raise RuntimeError(f"site {server.site_key} not in GET /api/v1/sites: {sites}")
        departments = [d for d in _items(_check(http.get("/api/v1/departments"), "list departments"))
                       if d.get("site_id") == site["id"]]
        if not departments:
            raise RuntimeError("the demo site has no department")
        for d in departments:
            _check(http.patch(f"/api/v1/departments/{d['id']}", json={"strategy": strategy}),
                   "patch department")
        if own_department:
            body = {"site_id": site["id"], "name": "Bench operators", "strategy": strategy}
            departments = [_check(http.post("/api/v1/departments", json=body), "create department")]
        logins = []
        for i in range(n_operators):
            email = f"op{i}-{secrets.token_hex(3)}@bench.test"
            password = "op-" + secrets.token_urlsafe(18)
            body = {"email": email, "name": f"Operator {i}", "password": password, "role": "operator",
                    "max_chats": max_chats, "department_ids": [d["id"] for d in departments]}
            _check(http.post("/api/v1/operators", json=body), "create operator")
            logins.append({"email": email, "password": _first_log_in(server, email, password)})
    return logins


def _first_log_in(server: Server, email: str, one_time: str) -> str:
    """A password set by an administrator is a one-time password: the operator chooses their own
    at the first log-in (until then the console socket is refused). Returns the new password."""
    chosen = "op-" + secrets.token_urlsafe(18)
    with httpx.Client(base_url=server.base_url, timeout=60, headers={"Origin": server.origin}) as http:
        _check(http.post("/api/v1/auth/login", json={"email": email, "password": one_time}), "operator login")
        r = http.post("/api/v1/auth/password", json={"current_password": one_time, "new_password": chosen})
        if r.status_code >= 300:
            raise RuntimeError(f"operator password change: HTTP {r.status_code} {r.text[:200]}")
    return chosen


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        for key in ("items", "results", "data", "sites", "departments"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return list(data)


def _check(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:400]}")
    return r.json() if r.content else None


def fd_count(pid: int) -> int | None:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return total - idle, total
