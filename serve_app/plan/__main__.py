"""`python -m serve_app.plan`: see serve_app/plan/__init__.py."""

import os
import sys

# Set before Ray is imported: a Serve internal touching a DeploymentHandle would otherwise
# start a local Ray instance silently (Ray's auto-connect); planning must fail loudly instead.
# The explicit ray.init(address="auto") used to read a running cluster is not affected.
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")

from serve_app.plan.cli import main  # noqa: E402

sys.exit(main())
