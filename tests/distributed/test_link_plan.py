"""Which plan a Ray Data link job runs: the linker fused into one actor pool unless a stage asks
for GPUs (then each stage keeps its own pool, so only that stage's actors hold them)."""

import pytest

from ameli_ray.config import AmeliConfig
from ameli_ray.distributed.data import link_plan


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
