"""The `serve` command: help, the one-line answers when it cannot start, and a real server process.
These run without the serve extra, except the last, which starts the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import one_line_error, run

REPO = Path(__file__).resolve().parents[1]


def test_serve_help():
    result = run("serve", "--help")
    assert result.exit_code == 0
    assert "--host" in result.output and "--port" in result.output and "gencli[serve]" in result.output


def test_serve_without_the_extra_says_what_to_install(monkeypatch):
    import gencli.serve

    monkeypatch.setattr(gencli.serve, "missing_dependencies", lambda: ["fastapi", "uvicorn"])
    result = run("serve")
    one_line_error(result, 'pip install "gencli[serve]"')


def test_serve_refuses_a_port_in_use():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        result = run("serve", "--port", s.getsockname()[1])
    one_line_error(result, "in use")


def test_a_host_beyond_loopback_is_warned_about():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        result = run("serve", "--host", "0.0.0.0", "--port", s.getsockname()[1])
    assert result.exit_code == 1
    assert "Warning: listening on 0.0.0.0" in result.output and "there is no login" in result.output
    assert "in use" in result.output


def test_loopback_hosts():
    from gencli.cli.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_cli_help_imports_neither_the_web_stack_nor_torch():
    code = ("import sys; from gencli.cli import app; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_gencli_serve_runs_a_server_that_answers(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "gencli", "serve", "--port", str(port), "--threads", "1"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=1).json()
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()
                time.sleep(0.1)
        else:
            pytest.fail("the server did not answer within 30 s")
        assert "bundled:vae" in {m["id"] for m in body["models"]}
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in err
