"""A resource plan for a Serve config: `python -m serve_app.plan CONFIG [--cpus N --gpus N]`.

Per deployment of the config's application it shows replicas, CPU and GPU per replica,
the CUDA memory cap from the args, and where a first-fit-decreasing packing over Ray's
logical resources puts each replica (node, GPU index). It fails, saying why, when the
config does not fit the given nodes, when CUDA caps on one GPU add up to more than the
GPU, when a GPU share and its memory cap disagree, or when a deployment asks for a GPU
that its code never uses. Nothing here starts Ray; only reading a running cluster's
resources (no --cpus/--gpus/--node) connects to it.
"""
