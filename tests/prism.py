"""Prism serving SendGrid's own Mail Send OpenAPI description, so tests check each request the
SendGrid sender makes against SendGrid's contract without a network or an account.

`--errors` makes Prism answer a request that breaks the contract with the 4xx the description
gives (and the broken rules in its `sl-violations` header) instead of a mock 202.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# SendGrid's own Mail Send description (MIT, Twilio; LICENSE beside it), kept in the repository
# so a clone anywhere checks against it.
MAIL_SEND_OPENAPI = ROOT / "tests" / "contract" / "sendgrid" / "mail_v3.openapi.json"
PRISM = ROOT / "node_modules" / ".bin" / "prism"
START_TIMEOUT_S = 60.0


class PrismUnavailable(RuntimeError):
    """Prism could not be installed or started."""


def missing_tools() -> list[str]:
    """What this machine lacks to run Prism at all (`node` to run it, `npm` to install it)."""
    return [tool for tool in ("node", "npm") if shutil.which(tool) is None]


@cache
def ensure_prism() -> Path:
    """Install the pinned Prism from package-lock.json once, if node_modules lacks it."""
    if PRISM.exists():
        return PRISM
    npm = shutil.which("npm")
    if npm is None:
        raise PrismUnavailable("npm is not installed")
    command = [
        npm,
        "ci" if (ROOT / "package-lock.json").exists() else "install",
        "--no-audit",
        "--no-fund",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not PRISM.exists():
        raise PrismUnavailable(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return PRISM


@contextmanager
def prism_mock(spec: Path = MAIL_SEND_OPENAPI) -> Iterator[str]:
    """Run `prism mock --errors` on a free local port; yields its base URL."""
    prism = ensure_prism()
    with tempfile.TemporaryFile("w+") as log:
        # The port is free when chosen but may be taken before Prism binds it: try a few.
        for _attempt in range(3):
            port = _free_port()
            process = subprocess.Popen(
                [str(prism), "mock", "--errors", "-p", str(port), "-h", "127.0.0.1", str(spec)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                if _wait_until_answering(process, url):
                    yield url
                    return
            finally:
                _stop(process)
        log.seek(0)
        raise PrismUnavailable(f"Prism did not start:\n{log.read()[-4000:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def recording_relay(prism_url: str) -> Iterator[tuple[str, list[bytes]]]:
    """A pass-through to Prism that keeps each request body: what the official client really
    sends, checked by the contract on its way (the client's own 202 says Prism accepted it)."""
    bodies: list[bytes] = []

    class Relay(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append(body)
            request = urllib.request.Request(prism_url + self.path, body, method="POST",
                                             headers=dict(self.headers))
            try:
                answer = urllib.request.urlopen(request, timeout=10)
            except urllib.error.HTTPError as refused:
                answer = refused
            with answer:
                payload = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", bodies
    finally:
        server.shutdown()
        server.server_close()


def _wait_until_answering(process: subprocess.Popen[bytes], url: str) -> bool:
    """True once Prism answers any HTTP request; False if it exited first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(f"{url}/v3/mail/batch/ready", timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    raise PrismUnavailable(f"Prism did not answer on {url} within {START_TIMEOUT_S:.0f}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # Prism was started in its own session: end its whole group, not just the launcher.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
