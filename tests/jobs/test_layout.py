"""The job layer stands on its own floor: importing it brings in no model family, no Ray
and no scientific stack (finding: it imported every family's config and scipy)."""

from __future__ import annotations

import subprocess
import sys

JOB_LAYER = ["serve_app.jobs." + m for m in (
    "settings", "errors", "model", "store", "stores", "memory", "sql", "sqlite", "postgres",
    "endpoints", "dispatcher", "service", "webhooks")]
FORBIDDEN = ("deployments", "ray", "scipy", "torch", "numpy", "serve_app.settings",
             "serve_app.api", "serve_app.callers")


def test_the_job_layer_imports_nothing_of_models_ray_or_http_routes() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in JOB_LAYER) +
            "print('\\n'.join(sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert set(JOB_LAYER) <= set(loaded)
    leaked = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN
                    or any(m.startswith(f + ".") for f in FORBIDDEN))
    assert leaked == []
