"""The deployments of a config's application and their resources, as Serve would run them.

Serve's own code does the work, so the plan cannot drift from what `serve deploy` does:
the config is validated by `ServeDeploySchema`, the graph is built by the config's
`import_path` builder and Serve's `build_app`, and the `deployments:` section is applied
by the controller's `override_deployment_info` (an override's `ray_actor_options`
replaces the code's dict, and a missing `num_cpus` becomes Ray's default of 1). These are
Serve internals; pyproject pins ray to 2.60.x, and tests/test_plan.py checks both rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from serve_app.settings import AppArgs, load_args

#: the only builder whose args this plan knows how to read GPU settings from
BUILDER = "serve_app.app:build_app"


class ConfigError(ValueError):
    """The config is not one Serve would deploy (or not this application's)."""


@dataclass(frozen=True)
class DeploymentResources:
    name: str
    min_replicas: int
    max_replicas: int
    autoscaling: bool
    cpus: float
    gpus: float
    max_replicas_per_node: int | None
    #: requested resources the plan does not pack (memory, custom resources)
    unplanned: dict[str, float]

    def replicas(self, autoscaled: str = "max") -> int:
        """Replicas to pack: an autoscaling deployment at its `min` or `max`."""
        return self.min_replicas if autoscaled == "min" else self.max_replicas

    def replicas_text(self) -> str:
        if self.autoscaling:
            return f"{self.min_replicas}..{self.max_replicas}"
        return str(self.max_replicas)


@dataclass(frozen=True)
class AppPlanInput:
    app_name: str
    args: AppArgs
    #: ingress first, then in the order Serve builds the graph
    deployments: list[DeploymentResources]


def load_application(config_path: Path, app_name: str | None = None) -> AppPlanInput:
    """Validate `config_path` as Serve does and return its application's deployments."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        config = ServeDeploySchema.model_validate(yaml.safe_load(config_path.read_text()))
    except ValidationError as exc:
        raise ConfigError(f"{config_path} is not a valid Serve config:\n{exc}") from exc
    apps = {app.name: app for app in config.applications}
    if app_name is None and len(apps) != 1:
        raise ConfigError(f"{config_path} has applications {sorted(apps)}; choose one with --app")
    app_config = apps.get(app_name) if app_name else next(iter(apps.values()))
    if app_config is None:
        raise ConfigError(f"no application {app_name!r} in {config_path}; "
                          f"it has {sorted(apps)}")
    if app_config.import_path != BUILDER:
        raise ConfigError(f"application {app_config.name!r} imports "
                          f"{app_config.import_path}; the plan knows {BUILDER} only")
    try:
        args = load_args(app_config.args)
    except ValidationError as exc:
        raise ConfigError(f"args of application {app_config.name!r} are invalid:\n{exc}") from exc
    return AppPlanInput(app_config.name, args, _deployments(app_config))


def _deployments(app_config: Any) -> list[DeploymentResources]:
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.application_state import override_deployment_info
    from ray.serve._private.build_app import build_app
    from ray.serve._private.deployment_info import DeploymentInfo

    app = call_user_app_builder_with_args_if_necessary(import_attr(app_config.import_path),
                                                       app_config.args)
    built = build_app(app, name=app_config.name)
    infos = {d.name: DeploymentInfo(deployment_config=d._deployment_config,
                                    replica_config=_resources_only(d._replica_config),
                                    start_time_ms=0, deployer_job_id="")
             for d in built.deployments}
    try:
        infos = override_deployment_info(infos, app_config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the deployments: section of {app_config.name!r}: {exc}") from exc
    order = [built.ingress_deployment_name] + [n for n in infos
                                               if n != built.ingress_deployment_name]
    return [_resources(name, infos[name]) for name in order]


def _resources_only(replica_config: Any) -> Any:
    """The replica config without the code and init args.

    `override_deployment_info` deep-copies its input, and deep-copying a DeploymentHandle
    (in the init args) looks up `__deepcopy__` on it, which connects to Serve, starting
    Ray. The resource fields are all the plan needs.
    """
    from ray.serve._private.config import ReplicaConfig

    rc = replica_config
    return ReplicaConfig(rc.deployment_def_name, b"", None, None, dict(rc.ray_actor_options),
                         rc.placement_group_bundles, rc.placement_group_strategy,
                         rc.placement_group_bundle_label_selector,
                         rc.placement_group_fallback_strategy, rc.max_replicas_per_node)


def _resources(name: str, info: Any) -> DeploymentResources:
    replica = info.replica_config
    if replica.placement_group_bundles:
        # A placement group's bundles, not ray_actor_options, hold its resources.
        raise ConfigError(f"{name} uses placement_group_bundles, which the plan does not model")
    config = info.deployment_config
    scaling = config.autoscaling_config
    if scaling is not None:
        low, high = scaling.min_replicas, scaling.max_replicas
    else:
        low = high = config.num_replicas
    resources = dict(replica.resource_dict)
    cpus = float(resources.pop("CPU", 0))
    gpus = float(resources.pop("GPU", 0))
    return DeploymentResources(name, low, high, scaling is not None, cpus, gpus,
                               replica.max_replicas_per_node,
                               {k: float(v) for k, v in resources.items()})
