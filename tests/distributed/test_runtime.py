"""How an actor sizes its thread pools: the stage's `threads`, else the CPUs Ray gave it."""

import sys

import pytest

from ameli_ray.config import ServeStage, StageResources
from ameli_ray.distributed.runtime import set_threads


def test_outside_ray_the_configured_cpus_decide():
    assert set_threads(StageResources(num_cpus=0.5)) == 1
    assert set_threads(StageResources(num_cpus=2)) == 2
    assert set_threads(ServeStage(num_cpus=0.5, threads=3)) == 3


@pytest.mark.ray
@pytest.mark.slow
def test_an_actor_takes_the_cpus_ray_gave_it_unless_threads_are_set():
    import ray

    from ameli_ray.config import RaySettings
    from ameli_ray.distributed.runtime import start_ray, stop_ray

    # a Serve config's ray_actor_options may give a replica more CPUs than serve.<stage>.num_cpus says
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    start_ray(RaySettings(num_cpus=4))
    try:
        @ray.remote(num_cpus=3)
        class Replica:
            def threads(self, stage):
                import torch

                return set_threads(stage), torch.get_num_threads()

        actor = Replica.remote()
        assert ray.get(actor.threads.remote(ServeStage(num_cpus=0.5))) == (3, 3)
        assert ray.get(actor.threads.remote(ServeStage(num_cpus=0.5, threads=2))) == (2, 2)
    finally:
        stop_ray()
