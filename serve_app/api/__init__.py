"""The HTTP boundary: request/response models, routes, error mapping."""
