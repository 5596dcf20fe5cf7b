"""The preview page in a real browser: Debian's headless Chromium loads it from a running
server, shows the subject, and its screenshot is a real picture (saved beside the test's
temporary files, and as `preview-screenshot.png` in LOYALLOOP_TEST_ARTIFACTS when set)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from intake.preview import make_preview_router
from messages.render import TemplateRenderer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless preview test skipped: Debian's `chromium` is not installed "
           "(apt-get install -y chromium)",
)


@pytest.fixture
def preview_url(templates_copy: Path) -> Iterator[str]:
    """The preview router on a real uvicorn server, on a free port."""
    app = FastAPI()
    app.include_router(make_preview_router(lambda: TemplateRenderer(templates_copy), dev=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "preview server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, width, height, compressed = 8, 0, 0, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    return width, height, zlib.decompress(compressed)


def test_preview_page_in_headless_chromium(preview_url: str, tmp_path: Path):
    url = f"{preview_url}/templates/referral_prompt/preview?sample=sam-en-three-items-creator"
    subject = "Sam &lt;O'Neil&gt;, share Demo Coffee Co. and your friends save"

    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'<span class="subject" id="subject">{subject}</span>' in dom.stdout
    assert '<pre id="text">Hi Sam &lt;O\'Neil&gt;,' in dom.stdout
    assert "<iframe sandbox=" in dom.stdout

    screenshot = tmp_path / "preview.png"
    shot = _chromium(tmp_path, f"--screenshot={screenshot}", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    width, height, pixels = _png_pixels(data)
    assert (width, height) == (1280, 900)
    assert len(set(pixels)) > 50, "the screenshot is blank"
    artifacts = os.environ.get("LOYALLOOP_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / "preview-screenshot.png")
