"""A working input of the `dental-pano` endpoint: a synthetic panoramic radiograph as a
data: URI. The API docs, the console and the tests all use it."""

import base64
import io
from functools import cache
from typing import Any


@cache
def example_input() -> dict[str, Any]:
    from PIL import Image

    from deployments.dental.synthetic import synthetic_radiograph

    png = io.BytesIO()
    Image.fromarray(synthetic_radiograph(256, 512)).save(png, format="PNG")
    return {"image_url": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}
