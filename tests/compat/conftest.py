"""Fixtures of the hvac compatibility suite.

Every test drives a real `cairn server` process on a loopback port with the
unchanged Python client `hvac`, the way a Vault user would. Servers are started
per test from a generated Vault-style HCL config (or `--dev`), polled on
`sys/health` until they answer, and killed on teardown. Each server's stderr
(its log) and stdout (the `--dev` banner) go to files that the teardown
searches for every token, unseal key and secret value the test registered with
`server.remember(...)`: none of them may ever appear in the log, and on stdout
only what the dev banner shows on purpose (its root token and unseal key).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import hvac
import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]

# How long a debug build may take to answer its first sys/health.
READY_DEADLINE_S = 30.0
# Environment variables that would point a client or the server somewhere else.
_SCRUBBED_ENV = ("VAULT_ADDR", "VAULT_TOKEN", "CAIRN_ADDR", "CAIRN_TOKEN", "VAULT_NAMESPACE")


def pytest_configure(config):
    # hvac falls back to VAULT_TOKEN / VAULT_ADDR when given nothing: a test
    # must only ever use the token it passed explicitly.
    for name in _SCRUBBED_ENV:
        os.environ.pop(name, None)


def cairn_binary_path() -> Path:
    """The `cairn` binary under test: `CAIRN_BIN`, else the debug build of this checkout."""
    if os.environ.get("CAIRN_BIN"):
        return Path(os.environ["CAIRN_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "cairn"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str) -> str:
    """A value no log line could contain by chance, to grep for later."""
    return f"{prefix}-{secrets.token_hex(12)}"


class CairnServer:
    """One `cairn server` process and what the test knows about it."""

    def __init__(self, binary: Path, workdir: Path, name: str, dev: bool,
                 storage: str = "inmem", storage_path: Optional[Path] = None,
                 root_token: Optional[str] = None, extra_config: str = ""):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.dev = dev
        self.storage = storage
        self.storage_path = storage_path
        self.root_token = root_token
        self.extra_config = extra_config
        self.log_path = workdir / f"{name}.log"
        self.stdout_path = workdir / f"{name}.stdout"
        self.config_path = workdir / f"{name}.hcl"
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self._sensitive: set[str] = set()
        # Values that may appear on stdout on purpose: `--dev` prints its root
        # token and unseal key in a banner, as Vault's dev server does.
        self._allowed_on_stdout: set[str] = set()
        self._log_handle = None
        self._out_handle = None
        self.starts = 0
        self.dev_unseal_key: Optional[str] = None

    # ----------------------------------------------------------- lifecycle --

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def _write_config(self) -> None:
        if self.storage == "inmem":
            storage = 'storage "inmem" {}\n'
            cluster = ""
        elif self.storage == "raft":
            assert self.storage_path is not None
            storage = (
                'storage "raft" {\n'
                f'  path    = "{self.storage_path}"\n'
                '  node_id = "n1"\n'
                "}\n"
            )
            cluster = f'cluster_addr = "http://127.0.0.1:{free_port()}"\n'
        else:
            raise ValueError(f"unknown storage {self.storage!r}")
        self.config_path.write_text(
            'listener "tcp" {\n'
            f'  address     = "{self.addr}"\n'
            "  tls_disable = true\n"
            "}\n"
            f"{storage}"
            f'api_addr  = "{self.url}"\n'
            f"{cluster}"
            # Debug level: a secret must not leak at any level, so look at the chattiest.
            'log_level = "debug"\n'
            f"{self.extra_config}"
        )

    def _command(self) -> list[str]:
        if self.dev:
            return [str(self.binary), "server", "--dev",
                    "--dev-listen-address", self.addr,
                    "--dev-root-token-id", str(self.root_token)]
        return [str(self.binary), "server", "--config", str(self.config_path)]

    def start(self) -> "CairnServer":
        """Starts the process on a fresh port and waits until `sys/health` answers."""
        if not self.binary.exists():
            pytest.fail(f"no cairn binary at {self.binary}: build it (cargo build) or set CAIRN_BIN")
        last_error = ""
        # A port picked free can be taken by someone else before the server binds it.
        for _attempt in range(3):
            self.port = free_port()
            if not self.dev:
                self._write_config()
            # The server sees no CAIRN_* / VAULT_* settings of the developer's shell.
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "VAULT_"))}
            env.setdefault("RUST_BACKTRACE", "1")
            # Debug level for --dev too: a secret must not leak at any level.
            env["CAIRN_LOG_LEVEL"] = "debug"
            self._log_handle = open(self.log_path, "ab")
            self._out_handle = open(self.stdout_path, "ab")
            self.proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=self._out_handle,
                stderr=self._log_handle, cwd=self.workdir, env=env, start_new_session=True)
            self.starts += 1
            ok, last_error = self._wait_ready()
            if ok:
                if self.dev:
                    self._adopt_dev_banner()
                return self
            self._reap()
            if "in use" not in (self.log_text() + self.stdout_text()).lower():
                break
        pytest.fail(f"cairn server {self.name} did not become ready: {last_error}\n"
                    f"--- stdout ---\n{self.stdout_text()[-2000:]}\n--- log tail ---\n{self.log_tail()}")

    def _wait_ready(self) -> tuple[bool, str]:
        # Ask for 200 whatever the seal state, so "answers" is all this waits for;
        # a dev server must in addition be unsealed and active.
        params = {} if self.dev else {"uninitcode": "200", "sealedcode": "200", "standbycode": "200"}
        deadline = time.monotonic() + READY_DEADLINE_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                return False, f"process exited with {code}"
            try:
                r = requests.get(f"{self.url}/v1/sys/health", params=params, timeout=2)
                if r.status_code == 200:
                    return True, ""
                last = f"sys/health answered {r.status_code}: {r.text[:200]}"
            except requests.RequestException as e:
                last = f"{type(e).__name__}"
            time.sleep(0.05)
        return False, f"deadline of {READY_DEADLINE_S}s passed; last: {last}"

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing gets to flush."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for handle in (self._log_handle, self._out_handle):
            if handle is not None:
                handle.close()
        self._log_handle = None
        self._out_handle = None

    def _adopt_dev_banner(self) -> None:
        """Registers the dev banner's unseal key: allowed on stdout, never in the log."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = re.search(r"Unseal Key:\s*(\S+)", self.stdout_text())
            if m:
                self.dev_unseal_key = m.group(1)
                self.remember(self.dev_unseal_key)
                self._allowed_on_stdout.add(self.dev_unseal_key)
                return
            time.sleep(0.05)
        pytest.fail(f"cairn server --dev printed no 'Unseal Key:' line on stdout:\n{self.stdout_text()[-2000:]}")

    def restart(self, kill: bool = True) -> "CairnServer":
        """Stops (SIGKILL by default) and starts again on the same storage."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    # --------------------------------------------------------------- clients --

    def client(self, token: Optional[str] = None) -> hvac.Client:
        """An hvac client for this server; token "" means no token at all."""
        if token is None:
            token = self.root_token or ""
        return hvac.Client(url=self.url, token=token, timeout=30)

    def anonymous(self) -> hvac.Client:
        return self.client(token="")

    # -------------------------------------------------- secrets and the log --

    def remember(self, *values: str) -> None:
        """Registers values (tokens, keys, secret data) that must never be logged."""
        for v in values:
            if isinstance(v, str) and len(v) >= 8:
                self._sensitive.add(v)

    def remember_init(self, result: dict) -> None:
        """Registers everything `sys/init` returned, and adopts its root token."""
        self.remember(result["root_token"], *result.get("keys", []), *result.get("keys_base64", []))
        self.root_token = result["root_token"]

    def allow_on_stdout(self, value: str) -> None:
        self._allowed_on_stdout.add(value)

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """What the server wrote to stderr: its log."""
        return self._read(self.log_path)

    def stdout_text(self) -> str:
        return self._read(self.stdout_path)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def leaked_values(self) -> list[tuple[str, Path]]:
        """(value, file) for every registered value found where it must not be."""
        log = self.log_text()
        found = [(v, self.log_path) for v in sorted(self._sensitive) if v in log]
        out = self.stdout_text()
        found += [(v, self.stdout_path) for v in sorted(self._sensitive - self._allowed_on_stdout) if v in out]
        return found

    # ------------------------------------------------------------- helpers --

    def initialize_and_unseal(self, shares: int = 5, threshold: int = 3) -> dict:
        """Initialises with hvac, unseals with the first `threshold` keys, returns the init result."""
        c = self.anonymous()
        result = c.sys.initialize(secret_shares=shares, secret_threshold=threshold)
        self.remember_init(result)
        status = c.sys.submit_unseal_keys(result["keys"][:threshold])
        assert status["sealed"] is False, status
        return result

    def unseal(self, keys: Iterable[str]) -> dict:
        return self.anonymous().sys.submit_unseal_keys(list(keys))


def describe_leak(server: CairnServer, leaked: list[tuple[str, Path]]) -> str:
    # Says where, never what: the report must not become the leak.
    lines = [f"{len(leaked)} registered secret value(s) written by server {server.name}:"]
    for v, path in leaked:
        text = path.read_text(errors="replace")
        line_no = next(i for i, line in enumerate(text.splitlines(), 1) if v in line)
        lines.append(f"  a {len(v)}-char value on line {line_no} of {path}")
    return "\n".join(lines)


@pytest.fixture(scope="session")
def cairn_bin() -> Path:
    path = cairn_binary_path()
    if not path.exists():
        pytest.fail(f"no cairn binary at {path}: run `cargo build -p cairn-core --bin cairn` or set CAIRN_BIN")
    return path


@pytest.fixture
def server_factory(cairn_bin: Path, tmp_path: Path) -> Callable[..., CairnServer]:
    """Makes servers (not yet started); stops them all and checks their logs at teardown."""
    made: list[CairnServer] = []

    def make(name: str = "server", dev: bool = False, storage: str = "inmem",
             storage_path: Optional[Path] = None, root_token: Optional[str] = None,
             extra_config: str = "") -> CairnServer:
        workdir = tmp_path / name
        workdir.mkdir(parents=True, exist_ok=True)
        if storage == "raft" and storage_path is None:
            storage_path = workdir / "data"
            storage_path.mkdir(parents=True, exist_ok=True)
        srv = CairnServer(cairn_bin, workdir, name, dev, storage, storage_path, root_token, extra_config)
        made.append(srv)
        return srv

    yield make

    for srv in made:
        srv.stop()
    # Shown by pytest only when the test failed: the end of each server's log.
    for srv in made:
        print(f"--- stdout of {srv.name} ---\n{srv.stdout_text()[-1500:]}")
        print(f"--- tail of {srv.log_path} ---\n{srv.log_tail(40)}")
    problems = [describe_leak(srv, srv.leaked_values()) for srv in made if srv.leaked_values()]
    if problems:
        pytest.fail("secret material was written to a server log:\n" + "\n".join(problems))


@pytest.fixture
def fresh_server(server_factory) -> CairnServer:
    """An uninitialised, sealed server with in-memory storage."""
    return server_factory("fresh").start()


@pytest.fixture
def raft_server(server_factory) -> CairnServer:
    """An uninitialised, sealed server with durable (raft) storage in a temp dir."""
    return server_factory("durable", storage="raft").start()


@pytest.fixture
def dev_server(server_factory) -> CairnServer:
    """`cairn server --dev`: initialised, unsealed, `secret/` mounted as kv v2."""
    token = unique("root")
    srv = server_factory("dev", dev=True, root_token=token)
    srv.remember(token)
    # The dev banner prints the root token it was given, on purpose (as Vault's does).
    srv.allow_on_stdout(token)
    return srv.start()


@pytest.fixture
def root(dev_server) -> hvac.Client:
    """An hvac client holding the dev server's root token."""
    return dev_server.client()


@pytest.fixture
def kv(root):
    """`secrets.kv.v2` of the root client, mounted at `secret/`."""
    return root.secrets.kv.v2


def make_token(server: CairnServer, creator: hvac.Client, **kwargs) -> tuple[str, str]:
    """Creates a token with hvac, registers it as secret, returns (token, accessor)."""
    auth = creator.auth.token.create(**kwargs)["auth"]
    server.remember(auth["client_token"])
    return auth["client_token"], auth["accessor"]


def policy_client(server: CairnServer, root_client: hvac.Client, name: str, hcl: str) -> hvac.Client:
    """Writes an ACL policy and returns a client whose token has only it (and default)."""
    root_client.sys.create_or_update_acl_policy(name=name, policy=hcl)
    token, _ = make_token(server, root_client, policies=[name], ttl="1h")
    return server.client(token=token)


# ------------------------------------------------ PostgreSQL and Kubernetes --

@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL cluster, one per test module (initdb takes seconds)."""
    from pg_harness import remove_postgres, start_postgres

    pg = start_postgres()
    yield pg
    remove_postgres(pg)


@pytest.fixture
def pg(postgres):
    """The module's PostgreSQL, running again after the test even if the test stopped it."""
    yield postgres
    if not postgres.running:
        postgres.start()


@pytest.fixture
def database(dev_server, root, pg):
    """`database/` enabled on the dev server, connection `pg` configured (any role allowed)."""
    from database_mount import DatabaseMount

    return DatabaseMount(dev_server, root, pg).enable()


@pytest.fixture
def tokenreview():
    """A Kubernetes TokenReview endpoint served by the test, in a thread."""
    from tokenreview import TokenReviewServer

    srv = TokenReviewServer()
    yield srv
    srv.close()


def assert_secret_absent(secret: str, text: str, where: str = "the answer") -> None:
    """Fails if `secret` is in `text`, without printing either (assert would show both)."""
    if secret in text:
        pytest.fail(f"a {len(secret)}-char secret appears in {where}")
