"""The layering the README promises, enforced: the linking core imports without Ray, and the CLI
starts without the heavy stacks. Each check runs in a fresh interpreter (as Ray's own lazy-import
tests do), because this test process has long since imported everything."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ameli_ray

# the shells around the core: the only packages that may import ray
SHELLS = ("ameli_ray.distributed", "ameli_ray.serve")


def core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(ameli_ray.__path__, "ameli_ray.")]
    return sorted(["ameli_ray", *(n for n in names if not n.startswith(SHELLS))])


def first_importer(modules: list[str], heavy: str) -> dict:
    """Imports `modules` one by one in a fresh interpreter; names the first one after whose import
    `heavy` is in sys.modules (the module itself or something it imports pulled it in)."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"    if {heavy!r} in sys.modules:\n"
        "        print(json.dumps({'culprit': name})); break\n"
        "else:\n"
        "    print(json.dumps({'culprit': None, 'imported': len(" + repr(modules) + ")}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(ameli_ray.__file__).parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_module_list_covers_the_core_and_skips_the_shells():
    modules = core_modules()
    assert {"ameli_ray.linker", "ameli_ray.runners", "ameli_ray.workflows", "ameli_ray.training_run"} <= set(modules)
    assert not any(m.startswith(SHELLS) for m in modules)


@pytest.mark.slow  # imports torch, transformers, open_clip, faiss…
def test_no_core_module_imports_ray():
    result = first_importer(core_modules(), "ray")
    assert result["culprit"] is None, f"{result['culprit']} puts ray into sys.modules: move that import into distributed/"


def test_the_probe_would_catch_a_ray_import():
    # the check itself must be able to fail
    assert first_importer(["ameli_ray.config", "ray.data"], "ray")["culprit"] == "ray.data"


@pytest.mark.parametrize("heavy", ["torch", "ray", "transformers"])
def test_the_cli_starts_without_heavy_stacks(heavy):
    # `ameli-ray config` or `--help` must not pay for torch (seconds) before it says anything
    assert first_importer(["ameli_ray.cli", "ameli_ray.config"], heavy)["culprit"] is None


def test_only_the_factory_assembles_a_linker():
    """`linker.load_linker` is the one place the parts meet (KB, encoders, disambiguator), so the
    compatibility checks cannot be skipped by a runner that wires them itself."""
    import ast

    parts = {"Linker", "MentionEncoder", "Disambiguator"}
    root = Path(ameli_ray.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "linker.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in parts:
                offenders.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert offenders == []


# What runs where no model does: the driver of a Ray job (planning, commits, the streamed KB's
# indexes) and Serve's ingress and fusion replicas, which receive `MentionEvidence` and apply the
# fusion. torch would cost each of those processes ~400 MB of RSS for nothing.
TORCH_FREE = ["ameli_ray.workflows", "ameli_ray.corpus", "ameli_ray.linker", "ameli_ray.kb.streamed",
              "ameli_ray.distributed.corpus", "ameli_ray.distributed.data", "ameli_ray.serve.app",
              "ameli_ray.serve.stages", "ameli_ray.fusion", "ameli_ray.disambiguation.manifest", "ameli_ray.schema"]


def test_job_drivers_and_the_light_serve_stages_never_import_torch():
    result = first_importer(TORCH_FREE, "torch")
    assert result["culprit"] is None, f"{result['culprit']} puts torch into sys.modules: import it where a model runs"


def test_the_torch_probe_would_catch_the_model_module():
    assert first_importer(["ameli_ray.fusion", "ameli_ray.disambiguation.model"], "torch")["culprit"] == "ameli_ray.disambiguation.model"


def test_importing_the_package_makes_openmp_wait_passively():
    # every process that runs our models (Ray workers and Serve replicas included) imports the
    # package before torch, so this is where spinning OpenMP threads are turned off; a value the
    # operator set is kept
    probe = "import os, ameli_ray; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
