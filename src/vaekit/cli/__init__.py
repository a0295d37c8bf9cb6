"""The `vaekit` command. Argument parsing only: each command calls one library function.

Errors a user can cause end in one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from ..errors import VaekitError
from ..training.denormals import flush_denormals

app = typer.Typer(
    name="vaekit",
    help="Variational autoencoders you can point at your data: train, sample, reconstruct, explore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

from . import anomaly, compress, evaluate, generate, priors, serve, sweep, tables, train  # noqa: E402,F401  (registers the commands)


def system_error(e: OSError) -> str:
    """An OSError in one sentence, naming the file (nothing was left half-written: vaekit.atomic)."""
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or type(e).__name__}{where}; nothing already written was lost"


def main(argv: list[str] | None = None) -> None:
    flush_denormals()  # every command computes faster without denormal floats (vaekit.denormals)
    try:
        app(args=argv, prog_name="vaekit", standalone_mode=True)
    except VaekitError as e:
        print(f"vaekit: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a full disk, a read-only folder, a file-size limit: the system's reason and the path
        print(f"vaekit: error: {system_error(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("vaekit: interrupted (a run folder keeps its last complete checkpoint)", file=sys.stderr)
        sys.exit(130)
