"""Every Serve config in serve_configs/ is what Ray's own Serve schema accepts and builds this
application; every KubeRay manifest in cluster/kuberay/ validates against KubeRay's CRD schemas
(../shared/kuberay-crds, offline); the RayService carries serve_configs/production.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO.parent / "shared" / "kuberay-crds"
SERVE_CONFIGS = sorted((REPO / "serve_configs").glob("*.yaml"))
MANIFESTS = sorted((REPO / "cluster" / "kuberay").glob("*.yaml"))
CRD_OF = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml", "RayService": "ray.io_rayservices.yaml"}


def test_there_is_a_local_and_a_production_serve_config():
    assert {p.name for p in SERVE_CONFIGS} >= {"local.yaml", "production.yaml"}


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_configs_pass_rays_schema_and_build_the_application(path, monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    from ameli_ray.config import AmeliConfig
    from ameli_ray.serve.app import STAGES, application

    # production's key comes from the nodes' environment (AMELI_SERVE__API_KEY), as on a cluster
    monkeypatch.setenv("AMELI_SERVE__API_KEY", "from-the-environment")
    raw = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    assert schema.http_options.host == "127.0.0.1" or path.name == "production.yaml"
    for app in schema.applications:
        assert app.import_path == "ameli_ray.serve.app:build_app"
        config = AmeliConfig.load(app.args.get("config"), app.args.get("set", []))  # the args parse as every CLI's
        assert config.serve.host == schema.http_options.host  # the key rule sees the address the proxy binds
        built = application(config)  # builds without Ray running (and without preparing any asset)
        assert built._bound_deployment.name == "Ingress"
        by_name = {d.name: d for d in app.deployments}
        assert set(by_name) <= {"Ingress", *STAGES}
        for stage in STAGES:
            user_config = by_name[stage].user_config
            assert set(user_config) == {"kb", "model"} and user_config["kb"] == config.serve.kb
        for name, d in ((n, raw_d) for n, raw_d in ((x["name"], x) for x in raw["applications"][0].get("deployments", []))):
            auto = d.get("autoscaling_config")
            if auto:
                assert {"min_replicas", "max_replicas", "target_ongoing_requests"} <= set(auto)
                # replicas from the autoscaling config only: the code sets no fixed number for this stage
                assert getattr(config.serve, name.lower()).num_replicas is None, name
    if path.name == "production.yaml":
        gpu = {d.name: d.ray_actor_options for d in schema.applications[0].deployments}
        assert gpu["Disambiguation"].num_gpus >= 1
        assert "api_key" not in path.read_text().split("applications:")[1]  # never in the file itself
        from ameli_ray.serve.edge import is_loopback

        assert not is_loopback(config.serve.host)


def test_a_server_on_a_public_address_needs_an_api_key():
    from ameli_ray.config import AmeliConfig
    from ameli_ray.errors import ConfigError
    from ameli_ray.serve.app import application

    with pytest.raises(ConfigError, match="serve.api_key"):
        application(AmeliConfig.load(None, ["serve.host=0.0.0.0", "serve.kb=s3://b/kb"]))
    application(AmeliConfig.load(None, ["serve.host=0.0.0.0", "serve.kb=s3://b/kb", "serve.api_key=k"]))


def _fill_defaults(schema: dict, instance):
    """What the API server does before it validates: each missing field with a default gets it."""
    if not isinstance(schema, dict):
        return instance
    if isinstance(instance, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in instance and isinstance(sub, dict) and "default" in sub:
                instance[name] = copy.deepcopy(sub["default"])
            if name in instance:
                instance[name] = _fill_defaults(sub, instance[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in instance:
                if name not in (schema.get("properties") or {}):
                    instance[name] = _fill_defaults(extra, instance[name])
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [_fill_defaults(schema["items"], item) for item in instance]
    return instance


@pytest.mark.skipif(not CRDS.is_dir(), reason="KubeRay CRDs not at ../shared/kuberay-crds")
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kuberay_manifests_validate_against_the_crds(path):
    import jsonschema

    manifest = yaml.safe_load(path.read_text())
    crd = yaml.safe_load((CRDS / CRD_OF[manifest["kind"]]).read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    assert manifest["apiVersion"] == "ray.io/v1"
    jsonschema.validate(_fill_defaults(schema, copy.deepcopy(manifest)), schema)


def test_the_validation_would_catch_a_broken_manifest():
    import jsonschema

    if not CRDS.is_dir():
        pytest.skip("KubeRay CRDs not at ../shared/kuberay-crds")
    crd = yaml.safe_load((CRDS / CRD_OF["RayService"]).read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    broken = yaml.safe_load((REPO / "cluster" / "kuberay" / "rayservice.yaml").read_text())
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_fill_defaults(schema, broken), schema)


def test_the_rayservice_carries_the_production_serve_config():
    service = yaml.safe_load((REPO / "cluster" / "kuberay" / "rayservice.yaml").read_text())
    assert service["kind"] == "RayService"
    carried = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert carried == yaml.safe_load((REPO / "serve_configs" / "production.yaml").read_text())
