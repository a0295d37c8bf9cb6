"""`vaekit serve`: binds to loopback by default, prints the address, fails in one sentence."""

import socket

import pytest
import uvicorn

from vaekit.cli import main
from vaekit.serve import LOOPBACK_NAMES, is_loopback, url_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(args) -> int:
    """The exit status of `vaekit ARGS` (typer exits even on success)."""
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code or 0
    return 0


@pytest.fixture
def fake_uvicorn(monkeypatch):
    """Record what uvicorn.run would serve instead of serving forever."""
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_serve_binds_to_loopback_and_prints_the_address(digits_run, fake_uvicorn, capsys):
    port = free_port()
    assert run_cli(["serve", digits_run, "--port", port]) == 0
    app, kw = fake_uvicorn[0]
    assert kw["host"] == "127.0.0.1" and kw["port"] == port
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{port}/" in out and "warning" not in out
    # the app refuses other Host headers when bound to loopback (DNS rebinding)
    from fastapi.testclient import TestClient

    assert TestClient(app, base_url="http://evil.example").get("/api/info").status_code == 400
    assert TestClient(app, base_url=f"http://127.0.0.1:{port}").get("/api/info").status_code == 200


def test_serve_elsewhere_only_when_told(digits_run, fake_uvicorn, capsys):
    assert run_cli(["serve", digits_run, "--host", "0.0.0.0", "--port", free_port()]) == 0
    assert fake_uvicorn[0][1]["host"] == "0.0.0.0"
    assert "other machines" in capsys.readouterr().out


def test_serve_fails_in_one_sentence_on_a_busy_port(digits_run, fake_uvicorn, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert run_cli(["serve", digits_run, "--port", port]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not fake_uvicorn


@pytest.mark.parametrize(
    "args, words",
    [
        (["serve", "no/such/run"], "no such run folder"),
        (["serve", "{run}", "--port", "70000"], "--port must lie in"),
        (["serve", "{run}", "--max-upload-mb", "0"], "--max-upload-mb must lie between 0.01 and 1024, not 0"),
        (["serve", "{run}", "--host", "no.such.host.invalid"], "cannot use --host"),
    ],
)
def test_serve_errors(digits_run, fake_uvicorn, capsys, args, words):
    assert run_cli([a.replace("{run}", str(digits_run)) for a in args]) == 2
    assert words in capsys.readouterr().err


def test_loopback_helpers():
    assert all(is_loopback(h) for h in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
    assert not any(is_loopback(h) for h in ["0.0.0.0", "192.168.1.5", "example.org"])
    assert url_for("::1", 80) == "http://[::1]:80/" and url_for("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert "127.0.0.1" in LOOPBACK_NAMES
