"""The job layer: records, stores, the dispatcher and webhooks. It knows nothing of models:
it moves opaque JSON to an endpoint's deployment handle and back."""
