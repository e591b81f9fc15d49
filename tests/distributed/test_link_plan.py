"""Which plan a Ray Data link job runs: the linker fused into one actor pool unless a stage asks
for GPUs (then each stage keeps its own pool, so only that stage's actors hold them)."""

import pytest

from ameli_ray.config import AmeliConfig
from ameli_ray.distributed.data import link_plan, pools_shortfall


def test_auto_fuses_the_linker_where_no_stage_asks_for_gpus():
    assert link_plan(AmeliConfig()) == "fused"


@pytest.mark.parametrize("stage", ["text_stage", "image_stage", "ocr_stage", "retrieve_stage", "disambiguate_stage"])
def test_auto_keeps_the_stages_apart_when_one_asks_for_a_gpu(stage):
    assert link_plan(AmeliConfig.load(None, [f"{stage}.num_gpus=1"])) == "stages"


@pytest.mark.parametrize("plan", ["fused", "stages"])
def test_an_explicit_plan_is_kept(plan):
    assert link_plan(AmeliConfig.load(None, [f"link_plan={plan}", "text_stage.num_gpus=1"])) == plan


def test_an_unknown_plan_is_refused_by_the_configuration():
    with pytest.raises(Exception, match="link_plan"):
        AmeliConfig.load(None, ["link_plan=pipelined"])


STAGES = ("ocr_stage", "text_stage", "image_stage", "retrieve_stage", "disambiguate_stage")


def test_pools_that_fit_the_cluster_pass_and_the_default_fused_pool_fits_two_cores():
    assert pools_shortfall(AmeliConfig(), ("link_stage",), {"CPU": 2.0}) is None
    sized = AmeliConfig.load(None, [f"{s}.num_cpus=0.4" for s in STAGES])
    assert pools_shortfall(sized, STAGES, {"CPU": 2.0}) is None  # 5 x 0.4: every actor starts


def test_pools_that_cannot_all_start_are_named_with_their_numbers():
    # what hung for ever on 2 cores: two 0.5-CPU actors in each of five pools
    config = AmeliConfig.load(None, [f"{s}.concurrency=2" for s in STAGES])
    problem = pools_shortfall(config, STAGES, {"CPU": 2.0})
    assert problem is not None and problem.startswith("the actor pools of this pipeline ask for 5 CPUs")
    assert "ocr_stage 2x0.5" in problem and "where the Ray cluster has 2" in problem
    assert problem.endswith("or use link_plan=fused")
    gpu = AmeliConfig.load(None, ["disambiguate_stage.num_gpus=1", "disambiguate_stage.concurrency=2"])
    problem = pools_shortfall(gpu, ("text_stage", "image_stage"), {"CPU": 8.0})
    assert problem is None  # the GPU stage is not in this pipeline
    problem = pools_shortfall(gpu, ("retrieve_stage", "disambiguate_stage"), {"CPU": 8.0, "GPU": 1.0})
    assert "2 GPUs (disambiguate_stage 2x1) where the Ray cluster has 1" in problem
