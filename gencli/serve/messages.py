"""What `gencli serve` takes and answers: the upload limits, reading an upload, the one-line refusals,
the pictures."""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass

from gencli.data import open_rgb
from gencli.errors import GencliError

# Upload limits of the CycleGAN view. Above 1024 x 1024 pixels a translation goes tile by tile (as in
# `gencli translate`), so memory stays bounded; the pixel limit bounds the time (about a minute per
# 4 M pixels on two CPU cores), the byte limit what a request may make the server hold.
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE  # 16.8 M pixels


@dataclass(frozen=True)
class Picture:
    """An image the server answers with."""


    png: bytes
    filename: str  # the name the command writes, offered for download
    command: str  # the command (or Python line) that writes the same PNG


class Refused(GencliError):
    """A request the server turns down with HTTP `status`; with `retry_after` (seconds) a 429 to retry."""

    def __init__(self, message: str, status: int, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class UploadError(Refused):
    """An upload that is not an image within the limits; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message, status)


def safe_filename(name: str) -> str:
    """A client's file name reduced to a plain base name, for display only."""
    base = re.sub(r"[^A-Za-z0-9_.+-]", "_", os.path.basename(name.replace("\\", "/")))[:100].lstrip(".")
    return base or "upload.png"


def read_upload(data: bytes):
    """Uploaded bytes -> RGB PIL image, or an UploadError: too large, too many pixels, not an image."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"the upload is {len(data) / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB",
                          413)
    if not data:
        raise UploadError("the request holds no image")
    try:  # the header alone gives the size, before any pixel is decoded
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:
        width = height = None
    except (UnidentifiedImageError, OSError, ValueError):
        raise UploadError("the upload is not an image that can be read (PNG, JPEG, WebP, ...)") from None
    if width is None or width * height > MAX_IMAGE_PIXELS:
        size = "" if width is None else f"{width} x {height} = {width * height / 1e6:.1f} M pixels; "
        raise UploadError(f"the image is too large: {size}the limit is {MAX_IMAGE_PIXELS / 1e6:.1f} M pixels "
                          f"({MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE})")
    try:
        return open_rgb(io.BytesIO(data))
    except GencliError:
        raise UploadError("the upload is not an image that can be read (truncated or corrupt?)") from None
