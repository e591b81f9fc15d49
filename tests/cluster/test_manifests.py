"""The cluster files are what their tools accept, offline.

- cluster/aws.yaml goes through the steps `ray up` takes before it launches anything: Ray's
  prepare_config (defaults merged), the AWS provider filling each node type's resources from EC2's
  instance-type table (EC2 served by moto, offline), and validate_config, which checks it against the
  JSON schema shipped inside the ray package (ray/autoscaler/ray-schema.json).
- Every KubeRay RayJob's entrypoint names a job in jobs/ and options that job's CLI command accepts.
  (The manifests themselves are validated against KubeRay's CRD schemas in
  tests/serve/test_configs.py::test_kuberay_manifests_validate_against_the_crds, RayJobs included.)
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "cluster" / "aws.yaml"
RAYJOBS = sorted((REPO / "cluster" / "kuberay").glob("rayjob-*.yaml"))

try:  # typer 0.2x vendors click: its usage errors derive from TyperException, not click's
    from typer.exceptions import TyperException as CliUsageError
except ImportError:  # pragma: no cover - typer on the real click
    from click import ClickException as CliUsageError


def ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.fixture(scope="module")
def prepared_launcher_config():
    """cluster/aws.yaml as `ray up` has it just before validate_config (ray's _bootstrap_config)."""
    import os

    from moto import mock_aws
    from ray.autoscaler._private.aws import utils as aws_utils
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider
    from ray.autoscaler._private.util import prepare_config

    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    # Ray caches boto3 clients: one made outside moto's mock would go to the real AWS.
    aws_utils.client_cache.cache_clear()
    aws_utils.resource_cache.cache_clear()
    try:
        with mock_aws():
            config = prepare_config(yaml.safe_load(LAUNCHER.read_text()))
            config = AWSNodeProvider.fillout_available_node_types_resources(config)
    finally:
        aws_utils.client_cache.cache_clear()
        aws_utils.resource_cache.cache_clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return config


def test_the_launcher_yaml_passes_ray_ups_validation(prepared_launcher_config):
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    validate_config(copy.deepcopy(prepared_launcher_config))  # what `ray up` runs: the schema and its own rules
    jsonschema.validate(prepared_launcher_config, ray_schema())  # the shipped schema, named explicitly
    types = prepared_launcher_config["available_node_types"]
    assert types[prepared_launcher_config["head_node_type"]]["resources"]["CPU"] == 0  # the head runs no stage
    gpu_types = [name for name, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types, "the encoders' GPU workers are missing"


def test_the_raw_launcher_yaml_lacks_only_what_ray_up_fills_in():
    """Before `ray up` fills it in, a node type's `resources` is the only thing the schema misses."""
    import jsonschema

    raw = yaml.safe_load(LAUNCHER.read_text())
    for node_type in raw["available_node_types"].values():
        node_type.setdefault("resources", {})
    jsonschema.validate(raw, ray_schema())


@pytest.mark.parametrize("break_it", [
    lambda c: c.update(max_workers="ten"),
    lambda c: c.update(head_node_typo="head"),
    lambda c: c["available_node_types"]["gpu_worker"].pop("node_config"),
    lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=-1),
    lambda c: c["provider"].pop("type"),
], ids=["max_workers-not-an-integer", "unknown-key", "node-type-without-node_config", "negative-gpus",
        "provider-without-type"])
def test_the_validation_catches_a_broken_launcher_yaml(prepared_launcher_config, break_it):
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    broken = copy.deepcopy(prepared_launcher_config)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_ray_ups_own_rules_catch_a_head_type_that_does_not_exist(prepared_launcher_config):
    from ray.autoscaler._private.util import validate_config

    broken = copy.deepcopy(prepared_launcher_config)
    broken["head_node_type"] = "no_such_type"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(broken)


# -- RayJob entrypoints ---------------------------------------------------------------------------

def test_there_is_a_rayjob_per_job():
    assert {p.name for p in RAYJOBS} == {f"rayjob-{j.stem.replace('_', '-')}.yaml" for j in (REPO / "jobs").glob("*.py")}


@pytest.mark.parametrize("path", RAYJOBS, ids=lambda p: p.name)
def test_rayjob_entrypoints_name_a_job_and_options_its_command_accepts(path):
    import typer.main

    from ameli_ray.cli import app
    from ameli_ray.config import AmeliConfig

    manifest = yaml.safe_load(path.read_text())
    assert manifest["kind"] == "RayJob"
    python, job, *args = shlex.split(manifest["spec"]["entrypoint"])
    assert python == "python" and job.startswith("jobs/"), manifest["spec"]["entrypoint"]
    job_file = REPO / job
    assert job_file.is_file(), f"{path.name} runs {job}, which does not exist"
    # the job forwards its arguments to one `ameli-ray` command: the one named in its sys.argv line
    found = re.search(r'sys\.argv = \["ameli-ray", "([a-z-]+)"', job_file.read_text())
    assert found, f"{job} does not forward to an ameli-ray command"
    command = typer.main.get_command(app).commands[found.group(1)]
    try:
        ctx = command.make_context(found.group(1), list(args))  # parses and type-checks; runs nothing
    except CliUsageError as exc:
        pytest.fail(f"{path.name}: `ameli-ray {found.group(1)}` refuses the entrypoint's options: {exc.format_message()}")
    AmeliConfig.load(None, ctx.params.get("set_") or [])  # every --set names a real setting with a valid value


def test_the_entrypoint_check_would_catch_an_unknown_option():
    import typer.main

    from ameli_ray.cli import app

    with pytest.raises(CliUsageError, match="--no-such-option"):
        typer.main.get_command(app).commands["link"].make_context("link", ["--kb", "s3://b/kb", "--no-such-option", "x"])
