"""The latent space explorer: a local web page over a trained run.

    vaekit serve runs/fmnist            # http://127.0.0.1:8000

explorer.py holds what the page shows (plain functions of the model), app.py the FastAPI
app over it, static/ the page itself (plain HTML/CSS/JS, no CDN), scoring.py the anomaly score.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from ..errors import VaekitError
from .app import create_app
from .explorer import Explorer

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]
MIN_UPLOAD_MB, MAX_UPLOAD_MB = 0.01, 1024.0  # 10 KiB (a small PNG) .. 1 GiB


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host and not host.startswith("[") else f"http://{host}:{port}/"


def check_port(host: str, port: int) -> None:
    """Fail with one sentence, before the model loads, when the address cannot be bound."""
    if not 0 <= port <= 65535:
        raise VaekitError(f"--port must lie in 0..65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise VaekitError(f"cannot use --host {host}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind(addr)
        except OSError as e:
            raise VaekitError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None


def serve(
    run_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cpu",
    max_upload_mb: float = 8.0,
    map_points: int = 10_000,
    prior=None,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the explorer for one run folder until interrupted. Binds to loopback unless told
    otherwise; opens no browser. prior: what samples are drawn from: a prior, or its kind
    (standard, gmm, vae or diffusion); None: the prior fitted last with `vaekit fit-prior`, else N(0, I)."""
    if not MIN_UPLOAD_MB <= max_upload_mb <= MAX_UPLOAD_MB:  # also refuses nan and inf
        raise VaekitError(
            f"--max-upload-mb must lie between {MIN_UPLOAD_MB:g} and {MAX_UPLOAD_MB:g}, not {max_upload_mb:g}"
        )
    check_port(host, port)
    echo(f"loading {run_dir} and encoding its test split ...")
    explorer = Explorer.from_run(run_dir, device=device, prior=prior, map_points=map_points)
    allowed = LOOPBACK_NAMES if is_loopback(host) else None
    app = create_app(explorer, max_upload_bytes=int(max_upload_mb * 2**20), allowed_hosts=allowed)
    if not is_loopback(host):
        echo(f"warning: listening on {host}: other machines on your network can reach this page")
    echo(f"vaekit explorer for {run_dir}: {url_for(host, port)}   (API docs: {url_for(host, port)}docs; Ctrl-C stops)")
    uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning")


__all__ = ["Explorer", "check_port", "is_loopback", "serve"]
