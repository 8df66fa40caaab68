"""The web app of `gencli serve`: one static page and a small JSON/PNG API over `ModelStore`.

Image endpoints answer a PNG with two headers: `X-Gencli-Command`, the command that writes the same
file, and `Content-Disposition`, the file name it writes. Clients name models only by the ids that
GET /api/models lists.

Requests run on the server's thread pool. Translations are slow (seconds), so at most one runs at a
time (`TRANSLATION_SLOTS`); another one meanwhile gets 429 at once instead of waiting in the pool,
and the fast views (a latent point, a StyleGAN seed) keep their own threads. Projections take minutes:
each runs as a job in a thread of its own (one at a time, the store's), polled by its id.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from gencli import __version__
from gencli.errors import GencliError
from gencli.serve.models import (MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MAX_UPLOAD_BYTES, STYLEGANS, NotFound, Picture,
                                 ModelStore, Refused, UploadError)

TRANSLATION_SLOTS = 1  # translations running at once; more get 429
STATIC = Path(str(resources.files("gencli.serve").joinpath("static")))

Seed = Annotated[int, Query(ge=0, le=2**32 - 1, description="Seed of z and the noise.")]
Truncation = Annotated[float, Query(ge=0, le=1, description="Truncation psi; 1 disables it.")]
Label = Annotated[Optional[int], Query(ge=0, le=99, description="The digit to condition on (cvae).")]
Class = Annotated[Optional[int], Query(ge=0, le=9999, description="The class to draw (a conditional stylegan; default 0).")]
Filename = Annotated[str, Query(max_length=255, description="The upload's file name, for the command text only.")]
JobId = Annotated[Optional[str], Query(max_length=64, description="A finished projection's id, in place of the seed.")]


def picture_response(picture: Picture, media_type: str = "image/png") -> Response:
    command = picture.command.encode("latin-1", "replace").decode("latin-1")  # header values are latin-1
    return Response(picture.png, media_type=media_type, headers={
        "X-Gencli-Command": command,
        "Content-Disposition": f'inline; filename="{picture.filename}"',
        "Cache-Control": "no-store",
    })


async def read_body(request: Request) -> bytes:
    """The raw request body, refused with 413 over MAX_UPLOAD_BYTES, declared or not, before it is all read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise UploadError(f"the upload is {int(declared) / 2**20:.1f} MiB; the limit is "
                          f"{MAX_UPLOAD_BYTES // 2**20} MiB", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            raise UploadError(f"the upload is over the limit of {MAX_UPLOAD_BYTES // 2**20} MiB", 413)
    return bytes(body)


def create_app(store: ModelStore) -> FastAPI:
    """The app over `store`; `store` decides the device, the runs folder and the data directory."""
    app = FastAPI(title="gencli", version=__version__, docs_url="/api/docs", redoc_url=None)
    app.state.store = store
    translations = threading.BoundedSemaphore(TRANSLATION_SLOTS)

    @app.exception_handler(NotFound)
    def not_found(request: Request, error: NotFound):
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(Refused)  # bad uploads among them
    def refused(request: Request, error: Refused):
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
        return JSONResponse({"detail": str(error)}, status_code=error.status, headers=headers)

    @app.exception_handler(GencliError)
    def bad_request(request: Request, error: GencliError):
        return JSONResponse({"detail": str(error)}, status_code=400)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/models")
    def models() -> dict:
        """Every model the server offers: run folders, imported and bundled models, with their family;
        `default` marks the one the CLI uses without --checkpoint."""
        return {"version": __version__, "device": str(store.device), "models": store.describe(),
                "limits": {"max_upload_bytes": MAX_UPLOAD_BYTES, "max_image_pixels": MAX_IMAGE_PIXELS,
                           "max_image_side": MAX_IMAGE_SIDE}}

    # --- VAE and CVAE ------------------------------------------------------------------------------------

    @app.get("/api/vae/{model_id}/scatter")
    def vae_scatter(model_id: str) -> dict:
        """Test-set latent means (dimensions 0 and 1) and their labels; computed once, then cached."""
        store.entry(model_id, ("vae", "cvae"))  # 404 before looking for data
        try:
            return store.vae_scatter(model_id)
        except NotFound:
            raise
        except GencliError as e:  # no test set on this machine: the plane works without the scatter
            raise HTTPException(404, f"no latent scatter: {e}") from None

    @app.get("/api/vae/{model_id}/decode")
    def vae_decode(model_id: str, x: Annotated[float, Query(ge=-1e3, le=1e3)],
                   y: Annotated[float, Query(ge=-1e3, le=1e3)], label: Label = None) -> Response:
        """The image decoded from the latent point (x, y)."""
        return picture_response(store.vae_point(model_id, x, y, label))

    @app.get("/api/vae/{model_id}/grid")
    def vae_grid(model_id: str, steps: Annotated[int, Query(ge=2, le=24)] = 8, label: Label = None) -> Response:
        """`gencli latent-grid`: steps x steps images over the test set's latent range."""
        return picture_response(store.vae_grid(model_id, steps, label))

    # --- StyleGAN ----------------------------------------------------------------------------------------

    @app.get("/api/stylegan/{model_id}/image")
    def stylegan_image(model_id: str, seed: Seed = 0, truncation: Truncation = 0.7, label: Class = None,
                       w: JobId = None) -> Response:
        """One image of seed `seed`; `w`: a finished projection whose w stands in place of the seed."""
        return picture_response(store.stylegan_image(model_id, seed, truncation, label, w))

    @app.get("/api/stylegan/{model_id}/mix")
    def stylegan_mix(model_id: str, row: Seed = 0, col: Seed = 1, cutoff: Annotated[int, Query(ge=0, le=64)] = 4,
                     truncation: Truncation = 0.7, label: Class = None, row_w: JobId = None,
                     col_w: JobId = None) -> Response:
        """Coarse styles (layers below `cutoff`) from seed `row`, fine ones from seed `col`; `row_w`/`col_w`:
        a finished projection whose w stands in place of that seed."""
        return picture_response(store.stylegan_mix(model_id, row, col, cutoff, truncation, label, row_w, col_w))

    @app.get("/api/stylegan/{model_id}/interpolate")
    def stylegan_interpolate(model_id: str, start: Seed = 0, end: Seed = 1,
                             steps: Annotated[int, Query(ge=2, le=16)] = 8, truncation: Truncation = 0.7,
                             label: Class = None, start_w: JobId = None, end_w: JobId = None) -> Response:
        """A strip from seed `start` to seed `end`, linear in w; `start_w`/`end_w`: a finished projection
        whose w stands in place of that seed."""
        return picture_response(store.stylegan_interpolation(model_id, start, end, steps, truncation, label,
                                                             start_w, end_w))

    @app.post("/api/stylegan/{model_id}/project", status_code=202)
    async def stylegan_project(request: Request, model_id: str, steps: Annotated[int, Query(ge=1, le=1000)] = 200,
                               label: Class = None, filename: Filename = "upload.png",
                               distance: Annotated[Optional[str], Query(
                                   pattern="^(lpips|inception|pixel)$",
                                   description="Default: lpips, else the best one there is (see `notes`).")] = None,
                               ) -> JSONResponse:
        """`gencli project` of the photo sent as the request body (raw bytes), as a background job: 202 with
        the job's status at once; poll GET .../project/{job}."""
        store.entry(model_id, STYLEGANS)
        body = await read_body(request)
        job = await run_in_threadpool(store.start_projection, model_id, body, steps, label, distance, filename)
        return JSONResponse(job, status_code=202, headers={"Location": f"/api/stylegan/{model_id}/project/{job['id']}"})

    @app.get("/api/stylegan/{model_id}/project/{job}")
    def stylegan_projection(model_id: str, job: str) -> dict:
        """The job's state (running, done, error), step of steps, current distance, notes and error."""
        return store.projection(model_id, job).describe()

    @app.get("/api/stylegan/{model_id}/project/{job}/image")
    def stylegan_projection_image(model_id: str, job: str) -> Response:
        return picture_response(store.projection(model_id, job).file("image"))

    @app.get("/api/stylegan/{model_id}/project/{job}/compare")
    def stylegan_projection_compare(model_id: str, job: str) -> Response:
        """The photo (as fitted to the network) beside its projection."""
        return picture_response(store.projection(model_id, job).file("compare"))

    @app.get("/api/stylegan/{model_id}/project/{job}/w")
    def stylegan_projection_w(model_id: str, job: str) -> Response:
        """The w file `gencli project` writes, to use where a seed goes."""
        return picture_response(store.projection(model_id, job).file("w"), "application/octet-stream")

    # --- CycleGAN ----------------------------------------------------------------------------------------

    @app.post("/api/cyclegan/{model_id}/translate")
    async def cyclegan_translate(request: Request, model_id: str,
                                 direction: Annotated[str, Query(pattern="^(a2b|b2a)$")] = "a2b",
                                 filename: Filename = "upload.png",
                                 precision: Annotated[str, Query(pattern="^(fp32|bf16|fp16)$")] = "fp32") -> Response:
        """Translate the image sent as the request body (raw bytes, any common format)."""
        store.entry(model_id, ("cyclegan",))
        body = await read_body(request)
        if not translations.acquire(blocking=False):
            raise Refused("a translation is already running; try again when it has finished", 429, retry_after=2)
        try:
            picture = await run_in_threadpool(store.cyclegan_translate, model_id, body, direction, filename,
                                             precision)
        finally:
            translations.release()
        return picture_response(picture)

    return app


def run(store: ModelStore, host: str, port: int) -> None:
    """Serve until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(store), host=host, port=port, log_level="warning")
