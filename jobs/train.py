"""Ray job entrypoint: train both disambiguation streams (Ray Train) and tune fusion on dev.

    ray job submit --working-dir . -- python jobs/train.py \
        --kb s3://bucket/kb/products --train-mentions s3://bucket/ameli/train.json \
        --dev-mentions s3://bucket/ameli/dev.json --model s3://bucket/models/ameli \
        --config prod.yaml --set train.num_workers=8 --set train.use_gpu=true

Takes exactly the options of `ameli-ray train`. Checkpoints go under MODEL/_checkpoints/ while it
runs: submitting the same command again after a crash resumes from the newest one. It joins the
job's cluster (ray.address=auto) unless AMELI_RAY__ADDRESS or --set ray.address=… says otherwise.
"""

import os
import sys

os.environ.setdefault("AMELI_RAY__ADDRESS", "auto")

from ameli_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["ameli-ray", "train", *sys.argv[1:]]
    main()
