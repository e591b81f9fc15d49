"""Ray job entrypoint: link a review corpus, S3 to S3, exactly once.

    ray job submit --working-dir . -- python jobs/link_corpus.py \
        --kb s3://bucket/kb/products --mentions 's3://bucket/reviews/2026-11/*.jsonl.gz' \
        --out s3://bucket/links/2026-11 --config prod.yaml

The corpus is a file, a prefix or a glob of shards, read by the workers; the output is one
committed part per shard. Resubmitting the same job after a failure links only the shards not yet
committed; after success it does nothing. Takes exactly the options of `ameli-ray link`. It joins the job's cluster (ray.address=auto)
unless AMELI_RAY__ADDRESS or --set ray.address=… says otherwise.
"""

import os
import sys

os.environ.setdefault("AMELI_RAY__ADDRESS", "auto")

from ameli_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["ameli-ray", "link", *sys.argv[1:]]
    main()
