"""Which deployment runs CUDA code, its CUDA memory cap, and the rules a GPU share obeys.

Ray's `num_gpus` (the share) only packs replicas onto a GPU; the replica's
`gpu_memory_fraction` (the cap, `torch.cuda.set_per_process_memory_fraction`) is what
keeps it inside that share. The rules:

- a deployment whose code never runs on CUDA asks for no GPU: no share, no cap, and no
  `device: cuda` (Ingress, pipelines, handlers, G2P without the transformers backend,
  the pocketsphinx recognizer, any model with `device: cpu`);
- a CUDA model with a share has a cap, and the cap is at most its share (equal is the
  convention; smaller leaves room for the CUDA context, which the cap does not cover);
  a larger cap could take memory promised to the replicas packed beside it;
- a cap needs a share: without one Ray reserves nothing for it;
- where the nodes have GPUs, a CUDA model with no share must say `device: cpu`: Ray
  leaves CUDA_VISIBLE_DEVICES alone for an actor with no GPU, so `auto` or `cuda` would
  put it on GPU 0, outside every share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serve_app.plan.graph import DeploymentResources
from serve_app.settings import AppArgs


@dataclass(frozen=True)
class ModelGpu:
    """A model deployment's GPU settings in the application's args."""

    cap: float | None
    cap_setting: str  #: where the cap is set, e.g. "dental.segmenter_gpu_memory_fraction"
    device: str
    device_setting: str
    #: why the model never runs on CUDA whatever its device; None when it can
    cpu_only: str | None = None

    def never_cuda(self) -> str | None:
        return self.cpu_only or (f"{self.device_setting} is cpu" if self.device == "cpu"
                                 else None)


def _g2p(args: AppArgs) -> ModelGpu:
    g2p = args.g2p
    cpu_only = None if "transformers" in g2p.backends else (
        f"its backends ({', '.join(g2p.backends)}) run on the CPU; only transformers uses CUDA")
    return ModelGpu(g2p.gpu_memory_fraction, "g2p.gpu_memory_fraction", g2p.device,
                    "g2p.device", cpu_only)


def _recognizer(args: AppArgs) -> ModelGpu:
    rec = args.pronunciation.recognizer
    cpu_only = "pocketsphinx runs on the CPU only" if rec.backend == "pocketsphinx" else None
    return ModelGpu(rec.gpu_memory_fraction, "pronunciation.recognizer.gpu_memory_fraction",
                    rec.device, "pronunciation.recognizer.device", cpu_only)


#: model deployment name -> its GPU settings; keep in step with serve_app/app.py's graph
MODELS: dict[str, Callable[[AppArgs], ModelGpu]] = {
    "G2P": _g2p,
    "PhoneRecognizer": _recognizer,
    "ToothSegmenter": lambda a: ModelGpu(a.dental.segmenter_gpu_memory_fraction,
                                         "dental.segmenter_gpu_memory_fraction",
                                         a.dental.device, "dental.device"),
    "FindingDetector": lambda a: ModelGpu(a.dental.detector_gpu_memory_fraction,
                                          "dental.detector_gpu_memory_fraction",
                                          a.dental.device, "dental.device"),
    "PDSegmenter": lambda a: ModelGpu(a.pd.gpu_memory_fraction, "pd.gpu_memory_fraction",
                                      a.pd.device, "pd.device"),
}

#: deployments that run no model: they never touch CUDA
NO_MODEL = {"Ingress": "the HTTP ingress runs no model",
            "AssessmentPipeline": "a pipeline runs no model",
            "DentalPipeline": "a pipeline runs no model",
            "PDPipeline": "a pipeline runs no model"}


def model_gpu(name: str, args: AppArgs) -> ModelGpu | None:
    """The GPU settings of model deployment `name`, None for any other deployment."""
    rule = MODELS.get(name)
    return rule(args) if rule else None


def no_model_reason(name: str) -> str | None:
    """Why deployment `name` never needs a GPU, None when it is a model or unknown."""
    if name.startswith("handler-"):
        # A RunPod handler's code is the user's: no setting caps its CUDA memory, so a GPU
        # share for it could not be kept apart from the capped models'.
        return "a RunPod handler has no CUDA memory cap setting"
    return NO_MODEL.get(name)


def gpu_problems(deployments: list[DeploymentResources], args: AppArgs,
                 nodes_have_gpus: bool) -> list[str]:
    """Every deployment whose GPU share, cap and device disagree (see the module rules)."""
    problems = []
    for d in deployments:
        model = model_gpu(d.name, args)
        if model is None:
            reason = no_model_reason(d.name) or (
                "no GPU rule is known for it (add one to serve_app/plan/gpu_rules.py)")
            if d.gpus > 0:
                problems.append(f"{d.name} asks for {_num(d.gpus)} GPU but {reason}; "
                                f"remove num_gpus")
            continue
        problems += _model_problems(d, model, nodes_have_gpus)
    return problems


def _model_problems(d: DeploymentResources, m: ModelGpu, nodes_have_gpus: bool) -> list[str]:
    share = d.gpus
    never = m.never_cuda()
    if never:
        asks = [f"num_gpus {_num(share)}"] if share > 0 else []
        asks += [f"{m.cap_setting} {_num(m.cap)}"] if m.cap is not None else []
        asks += [f"{m.device_setting} cuda"] if m.device == "cuda" else []
        if asks:
            return [f"{d.name} asks for a GPU ({', '.join(asks)}) but never runs on CUDA: "
                    f"{never}; drop them"]
        return []
    if share > 0 and m.cap is None:
        return [f"{d.name} has a {_num(share)} GPU share but no CUDA memory cap "
                f"({m.cap_setting} is unset): it could take the whole GPU; "
                f"set it to {_num(min(share, 1))}"]
    if share == 0 and m.cap is not None:
        return [f"{d.name} caps CUDA memory at {_num(m.cap)} ({m.cap_setting}) but asks for "
                f"no GPU share: Ray reserves none for it; set num_gpus to {_num(m.cap)} "
                f"or drop the cap"]
    if m.cap is not None and m.cap > min(share, 1):
        return [f"{d.name} caps CUDA memory at {_num(m.cap)} ({m.cap_setting}), more than its "
                f"{_num(share)} GPU share: it could take memory promised to the replicas "
                f"packed beside it; make them equal"]
    if share == 0 and nodes_have_gpus:
        return [f"{d.name} has no GPU share but {m.device_setting} is {m.device}: Ray leaves "
                f"CUDA_VISIBLE_DEVICES alone for an actor with no GPU, so it would run on GPU "
                f"0, uncounted and uncapped; set {m.device_setting} to cpu or give it a share "
                f"and a cap"]
    return []


def _num(value: float | None) -> str:
    return f"{value:g}"
