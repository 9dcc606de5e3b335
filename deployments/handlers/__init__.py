"""Unmodified RunPod worker handlers served through `serve_app.runpod_worker`."""
