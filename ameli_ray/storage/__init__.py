"""Where bytes live: local paths and s3:// URIs, the local S3 server, safe image decoding."""

from ameli_ray.storage.images import decode_image, load_images
from ameli_ray.storage.local_s3 import LocalS3Server, s3_for_run
from ameli_ray.storage.objects import ObjectStore, is_s3, join_uri, parquet_bytes, split_s3

__all__ = ["LocalS3Server", "ObjectStore", "decode_image", "load_images", "is_s3", "join_uri", "parquet_bytes", "s3_for_run", "split_s3"]
