"""Ray job entrypoint: build a KB version.

    ray job submit --working-dir . -- python jobs/build_kb.py \
        --entities s3://bucket/ameli/entities.json --kb s3://bucket/kb/products --config prod.yaml

Takes exactly the options of `ameli-ray build-kb`. It joins the job's cluster (ray.address=auto)
unless AMELI_RAY__ADDRESS or --set ray.address=… says otherwise.
"""

import os
import sys

os.environ.setdefault("AMELI_RAY__ADDRESS", "auto")

from ameli_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["ameli-ray", "build-kb", *sys.argv[1:]]
    main()
