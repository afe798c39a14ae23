"""The main job, end to end (run by ``bash demo/run``).

1. a throwaway Prosody on 127.0.0.1 (scratch directory, free port), two accounts;
2. the default database (SQLite in the XDG data directory) upgraded, two profiles;
3. alice publishes a few dozen Atom entries to her microblog node;
4. the host, with every discovered plugin, synchronises that node into bob's cache;
5. searches over the cache, printed as tables;
6. the server is stopped and its directory removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SAT = (
    [str(BIN / "sat-storage")]
    if (BIN / "sat-storage").exists()
    else [sys.executable, "-m", "sat_storage.cli.main"]
)
NODE = "urn:xmpp:microblog:0"
ACCOUNTS = {"alice": "demo-alice", "bob": "demo-bob"}  # account -> profile


def step(text: str) -> None:
    """Print a section heading (bold on a terminal, plain in a log)."""
    if sys.stdout.isatty() and os.environ.get("TERM", "dumb") != "dumb":
        text = f"\033[1m==> {text}\033[0m"
    else:
        text = f"==> {text}"
    print(f"\n{text}", flush=True)


def sat(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run and show ``sat-storage ARGS``."""
    print(
        "$ sat-storage " + " ".join(a if " " not in a and a else repr(a) for a in args), flush=True
    )
    return subprocess.run([*SAT, *args], check=check, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_prosody(directory: Path) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    port = free_port()
    for sub in ("data", "certs"):
        (directory / sub).mkdir()
    env = dict(os.environ, DEMO_DIR=str(directory), DEMO_PORT=str(port))
    config = str(HERE / "prosody.cfg.lua")
    for account in ACCOUNTS:
        subprocess.run(
            ["prosodyctl", "--config", config, "register", account, "localhost", f"pw-{account}"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    server = subprocess.Popen(
        ["prosody", "--config", config, "-F"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server, port, env
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log = (directory / "prosody.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"prosody did not start; its log:\n{log}") from None
            time.sleep(0.05)


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="sat-storage-demo."))
    server = None
    try:
        step("A throwaway Prosody on 127.0.0.1, accounts alice and bob")
        server, port, _env = start_prosody(scratch)
        print(f"prosody listening on 127.0.0.1:{port} (scratch dir {scratch})")
        config = scratch / "sat_storage.conf"
        config.write_text(
            "[xmpp]\n# the demo server is on loopback: no TLS needed\ntls = plaintext\n"
        )
        os.environ["SAT_STORAGE_CONFIG"] = str(config)

        step("The database: SQLite in the XDG data directory")
        sat("db", "upgrade")
        sat("db", "status")

        step("Two profiles connecting to the demo server")
        existing = subprocess.run([*SAT, "--json", "profile", "list"], check=True,
                                  capture_output=True, text=True).stdout  # fmt: skip
        for account, profile in ACCOUNTS.items():
            if f'"{profile}"' in existing:  # left by an earlier run: start afresh
                sat("--yes", "profile", "delete", profile)
            connection = ["--jid", f"{account}@localhost", "--password", f"pw-{account}"]
            sat(
                "profile",
                "create",
                profile,
                *connection,
                "--server",
                "127.0.0.1",
                "--port",
                str(port),
            )
        sat("profile", "list")

        step("alice publishes her blog: a few dozen Atom entries")
        subprocess.run(
            [sys.executable, str(HERE / "publish.py"), str(config), ACCOUNTS["alice"],
             str(HERE / "entries.atom")], check=True,
        )  # fmt: skip

        step("bob's host (every discovered plugin) synchronises alice's blog into the cache")
        sat("cache", "sync", "alice@localhost", NODE, "--profile", ACCOUNTS["bob"])
        sat("cache", "stats")

        step("Searching the cache (no network needed)")
        sat("cache", "search", "--profile", ACCOUNTS["bob"], "--fts", "cache OR sqlite",
            "--order-by", "published:desc", "--limit", "10")  # fmt: skip
        sat("cache", "search", "--profile", ACCOUNTS["bob"], "--type", "blog",
            "--parsed", "tags", "overlap", '["xmpp", "pubsub"]',
            "--parsed", "author", "==", "Bob Leroy", "--order-by", "published")  # fmt: skip
        return 0
    except subprocess.CalledProcessError as e:
        print(f"demo: a step failed (exit {e.returncode}): {e.cmd}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            print("\nprosody stopped", flush=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
