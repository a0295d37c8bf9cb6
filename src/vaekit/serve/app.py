"""The explorer's web layer: a FastAPI app over vaekit.serve.explorer.Explorer.

Each route validates its input, calls one Explorer method and sends images as PNG data
URLs. The server reads no path a client sends: the page and its scripts are the package's
own files, and uploads arrive as request bodies (size-limited while they stream in).
The API is documented at /docs (Swagger UI served from a local copy: no CDN) and /openapi.json.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__, plots
from ..data.images import ImageTooLarge
from ..errors import DataError, VaekitError
from .explorer import MAX_PIXELS, MAX_SAMPLES, MAX_STEPS, Z_LIMIT, Analysis, Explorer, image_from_bytes

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 8 * 2**20
MAX_LATENT_DIM = 4096  # a longer vector is refused by the schema before it is read into a tensor


def png_data_url(x: torch.Tensor) -> str:
    """One example (*data_shape) -> "data:image/png;base64,..." with its exact pixels
    (the page scales it up without smoothing). Feature vectors become a 1-pixel-high strip."""
    img = plots.displayable(torch.nan_to_num(x.float())[None])[0]  # (C, H, W) in [0, 1]
    arr = (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _floats(t: torch.Tensor, digits: int = 5) -> list[float]:
    return [round(float(v), digits) for v in t.reshape(-1)]


# -- schemas ------------------------------------------------------------------------------------------

LatentValue = Annotated[float, Field(allow_inf_nan=False, ge=-Z_LIMIT, le=Z_LIMIT)]
MapCoord = Annotated[float, Field(allow_inf_nan=False, ge=-Z_LIMIT, le=Z_LIMIT)]
Label = Annotated[
    int | None, Field(description="Class label; conditional models only (they require it).", examples=[None])
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecodeRequest(Strict):
    z: list[LatentValue] = Field(
        ...,
        max_length=MAX_LATENT_DIM,
        description="The latent vector, one finite number per latent dimension, in index order (z[0], z[1], ...).",
        examples=[[0.0, 0.5, -1.2]],
    )
    label: Label = None


class MapPointRequest(Strict):
    u: MapCoord = Field(..., description="Horizontal map coordinate (PC 1, or z[0] when latent-dim <= 2).")
    v: MapCoord = Field(..., description="Vertical map coordinate (PC 2, or z[1]).")
    label: Label = None


class InterpolateRequest(Strict):
    a: int = Field(..., description="Test-set index of the first image.")
    b: int = Field(..., description="Test-set index of the last image.")
    steps: int = Field(8, ge=2, le=MAX_STEPS, description="Images along the path, both ends included.")
    method: Literal["lerp", "slerp"] = Field("lerp", description="Straight line (lerp) or great circle (slerp).")


class ImageOut(BaseModel):
    image: str = Field(..., description="PNG data URL of the decoded image E[x|z].")


class CodeImageOut(BaseModel):
    z: list[float] = Field(..., description="The latent vector that was decoded.")
    image: str


class SamplesOut(BaseModel):
    images: list[str]
    z: list[list[float]]  # the codes drawn from the prior, one per image
    temperature: float
    seed: int | None


class InterpolateOut(BaseModel):
    images: list[str]
    z: list[list[float]] = Field(..., description="The latent vector of each image, (steps, latent_dim).")


class ScoreOut(BaseModel):
    name: str
    units: str
    value: float
    percentile: float = Field(..., description="Percentage of test-set reference images with a lower score.")
    reference_size: int
    help: str
    key: str = Field(
        "", description="The score's column in `vaekit score` output (llr, complexity, nll_iw, nelbo, recon_error)."
    )
    threshold: float | None = Field(
        None, description="Scores above it are flagged as anomalies (None: no threshold chosen)."
    )
    threshold_fpr: float | None = Field(
        None, description="The fraction of the run's validation split the threshold flags."
    )
    flagged: bool | None = Field(None, description="Whether this score is above the threshold.")


class AnalysisOut(BaseModel):
    image: str = Field(..., description="The input as the model sees it (converted and resized).")
    reconstruction: str = Field(..., description="Decoded posterior mean.")
    mu: list[float] = Field(..., description="Posterior mean per latent dimension, in index order.")
    std: list[float] = Field(..., description="Posterior standard deviation per latent dimension (0 for an AE).")
    score: ScoreOut
    index: int | None = Field(None, description="Test-set index, for test examples.")
    label: int | None = None
    label_name: str | None = None
    row: dict[str, Any] | None = Field(None, description="A table run: the row in the table's columns and units.")
    reconstructed_row: dict[str, Any] | None = Field(None, description="A table run: the reconstruction as a row.")


class DimOut(BaseModel):
    index: int
    kl: float = Field(..., description="Mean KL(q(z_d|x) || N(0,1)) over the test set, nats.")
    activity: float = Field(..., description="Var over the test set of the posterior mean of z_d.")
    active: bool = Field(..., description="activity > 0.01 (Burda et al. 2016).")
    low: float
    high: float


class PlaneOut(BaseModel):
    method: Literal["pca", "identity"]
    axis_names: list[str]
    origin: list[float] = Field(..., description="z at map point (0, 0).")
    axes: list[list[float]] = Field(..., description="z = origin + u * axes[0] + v * axes[1].")


class InfoOut(BaseModel):
    run: str
    data: str
    kind: str
    arch: str
    likelihood: str
    latent_dim: int
    data_shape: list[int]
    is_image: bool
    conditional: bool
    class_names: list[str] | None
    n_test: int
    prior: str
    dims: list[DimOut] = Field(..., description="Latent dimensions, most informative (highest KL) first.")
    plane: PlaneOut
    score: dict[str, Any]  # name, units, help, key, threshold, threshold_fpr
    limits: dict[str, int | float]
    version: str


class MapOut(BaseModel):
    u: list[float]
    v: list[float]
    index: list[int] = Field(..., description="Test-set index of each point.")
    label: list[int] | None


class RunOut(BaseModel):
    config: dict[str, Any]
    info: dict[str, Any]
    metrics: list[dict[str, Any]] = Field(..., description="One row per epoch; losses in nats per example.")
    best: dict[str, Any] | None = Field(..., description="The epoch with the lowest validation loss.")


# -- the app --------------------------------------------------------------------------------------------


def _readable(errors: list[dict[str, Any]]) -> str:
    """Pydantic's error list -> one sentence naming each bad field."""
    parts = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) if loc else "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "invalid input: " + "; ".join(parts)


def _upload_body_doc() -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "description": "The image file's bytes as the request body (not multipart), "
            "e.g. curl --data-binary @shirt.png -H 'Content-Type: image/png'.",
            "content": {"image/*": binary, "application/octet-stream": binary},
        }
    }


def create_app(
    explorer: Explorer, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, allowed_hosts: list[str] | None = None
) -> FastAPI:
    """The explorer's FastAPI app. allowed_hosts: Host headers to accept (None: any); the CLI
    passes the loopback names when it binds to loopback, which blocks DNS-rebinding pages."""
    ex = explorer
    run_name = str(ex.run.path) if ex.run is not None else "(in memory)"
    app = FastAPIOffline(
        title="vaekit explorer",
        version=__version__,
        description=f"Latent space explorer for the run `{run_name}`: its latent vectors have "
        f"**{ex.latent_dim}** numbers"
        + (
            f" and it needs a `label` in 0..{ex.model.config.num_classes - 1}"
            if ex.conditional
            else "; it takes no `label`"
        )
        + ". Images are PNG data URLs; losses and scores are in nats per example. "
        'Errors are JSON `{"detail": "..."}`.',
    )
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    index_html = (STATIC_DIR / "index.html").read_text()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return JSONResponse(status_code=422, content={"detail": _readable(errors), "errors": _jsonable(errors)})

    @app.exception_handler(VaekitError)
    async def _user_error(request: Request, exc: VaekitError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(index_html)

    @app.get("/api/info", response_model=InfoOut, summary="Model, latent dimensions and map plane")
    def info() -> InfoOut:
        cfg = ex.model.config
        return InfoOut(
            run=run_name,
            data=ex.run.info.get("data_name", "") if ex.run is not None else "",
            kind=cfg.kind,
            arch=cfg.arch,
            likelihood=cfg.likelihood,
            latent_dim=cfg.latent_dim,
            data_shape=list(cfg.data_shape),
            is_image=len(cfg.data_shape) == 3,
            conditional=ex.conditional,
            class_names=ex.class_names,
            n_test=len(ex.test),
            prior=type(ex.prior).__name__,
            dims=[DimOut(**vars(d)) for d in ex.dims],
            plane=PlaneOut(
                method=ex.plane.method,
                axis_names=ex.plane.axis_names,
                origin=_floats(ex.plane.origin),
                axes=[_floats(a) for a in ex.plane.axes],
            ),
            score={
                "name": ex.scorer.label,
                "units": ex.scorer.units,
                "help": ex.scorer.help,
                "key": ex.scorer.name,
                "threshold": ex.scorer.threshold,
                "threshold_fpr": ex.scorer.fpr,
            },
            limits={
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": MAX_PIXELS,
                "max_samples": MAX_SAMPLES,
                "max_steps": MAX_STEPS,
                "z_limit": Z_LIMIT,
            },
            version=__version__,
        )

    @app.get("/api/run", response_model=RunOut, summary="The run's config and per-epoch metrics")
    def run() -> dict[str, Any]:
        return ex.run_summary()

    @app.get("/api/map", response_model=MapOut, summary="Test-set posterior means on the map plane")
    def latent_map() -> MapOut:
        labels = None if ex.test.y is None else ex.test.y[ex.map_index].tolist()
        return MapOut(
            u=_floats(ex.map_xy[:, 0], 4), v=_floats(ex.map_xy[:, 1], 4), index=ex.map_index.tolist(), label=labels
        )

    # The two live decodes run on the event loop: one decode takes about a millisecond, and skipping the
    # worker-thread hop measurably cuts their latency (bench/serve_latency.py). Slower work (samples,
    # interpolation, uploads) stays in plain `def` routes, which FastAPI runs in its thread pool.
    @app.post("/api/decode", response_model=ImageOut, summary="Decode a latent vector")
    async def decode(req: DecodeRequest) -> ImageOut:
        return ImageOut(image=png_data_url(ex.decode(req.z, req.label)))

    @app.post("/api/map/decode", response_model=CodeImageOut, summary="Decode a point of the latent map")
    async def decode_map_point(req: MapPointRequest) -> CodeImageOut:
        z, image = ex.decode_map_point(req.u, req.v, req.label)
        return CodeImageOut(z=_floats(z), image=png_data_url(image))

    @app.get("/api/samples", response_model=SamplesOut, summary="Random samples from the prior")
    def samples(
        n: int = Query(16, ge=1, le=MAX_SAMPLES, description="How many samples."),
        temperature: float = Query(1.0, gt=0, le=10, allow_inf_nan=False, description="Scale of the prior's sd."),
        seed: int | None = Query(None, ge=0, lt=2**63, description="Seed of the draws (omit: random)."),
        label: int | None = Query(None, description="Class label (conditional models only)."),
    ) -> SamplesOut:
        x, z = ex.samples(n, temperature=temperature, seed=seed, label=label, return_z=True)
        return SamplesOut(
            images=[png_data_url(i) for i in x], z=[_floats(r) for r in z], temperature=temperature, seed=seed
        )

    def _analysis(a: Analysis, *, index=None, label=None) -> AnalysisOut:
        sc = ex.scorer
        score = ScoreOut(
            name=sc.label,
            units=sc.units,
            value=round(a.score, 3),
            percentile=round(a.percentile, 2),
            reference_size=len(ex.score_reference),
            help=sc.help,
            key=sc.name,
            threshold=sc.threshold,
            threshold_fpr=sc.fpr,
            flagged=a.flagged,
        )
        return AnalysisOut(
            image=png_data_url(a.image),
            reconstruction=png_data_url(a.reconstruction),
            mu=_floats(a.mu),
            std=_floats(a.std),
            score=score,
            index=index,
            label=label,
            label_name=ex.label_name(label),
            row=None if (rows := ex.rows(a.image[None], observed=True)) is None else rows[0],
            reconstructed_row=None if (rec := ex.rows(a.reconstruction[None])) is None else rec[0],
        )

    @app.get("/api/test/{index}", response_model=AnalysisOut, summary="One test image, analysed")
    def test_example(index: int) -> AnalysisOut:
        x, y = ex.example(index)
        return _analysis(ex.analyze(x, y if ex.conditional else None), index=index, label=y)

    @app.post("/api/interpolate", response_model=InterpolateOut, summary="Walk between two test images")
    def interpolate(req: InterpolateRequest) -> InterpolateOut:
        images, z = ex.interpolate(req.a, req.b, steps=req.steps, method=req.method)
        return InterpolateOut(images=[png_data_url(i) for i in images], z=[_floats(r) for r in z])

    @app.post(
        "/api/upload",
        response_model=AnalysisOut,
        summary="Upload an image: reconstruction, posterior, score",
        openapi_extra=_upload_body_doc(),
        responses={413: {"description": "Upload too large"}, 415: {"description": "Not an image"}},
    )
    async def upload(request: Request, label: int | None = Query(None, description="Class (conditional models).")):
        limit = f"the limit is {max_upload_bytes:,} bytes"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_upload_bytes:
            raise HTTPException(413, f"the upload is {int(declared):,} bytes; {limit}")
        body = bytearray()
        async for chunk in request.stream():  # counted as it arrives: no Content-Length is trusted
            body.extend(chunk)
            if len(body) > max_upload_bytes:
                raise HTTPException(413, f"the upload is over {max_upload_bytes:,} bytes; {limit}")
        if not body:
            raise HTTPException(422, "the upload is empty; send the bytes of an image file as the request body")

        def work() -> AnalysisOut:
            try:
                x = image_from_bytes(bytes(body), ex.model.data_shape)
            except ImageTooLarge as e:
                raise HTTPException(413, str(e)) from None
            except DataError as e:
                raise HTTPException(415, str(e)) from None
            return _analysis(ex.analyze(x, label), label=label)

        return await run_in_threadpool(work)

    return app


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors may carry exception objects in ctx; keep what JSON can hold."""
    keep = ("type", "loc", "msg")
    return [{k: (list(e[k]) if k == "loc" else e[k]) for k in keep if k in e} for e in errors]
