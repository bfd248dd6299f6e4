"""Reads one archived Parquet object from S3 with pyarrow (an implementation independent of the service's
hyparquet), for test/integration/archive.test.ts. Prints one JSON object: row count, row groups, the Arrow
schema, the codec, and the rows whose ids are given. S3 settings come from the variables the service reads."""
import datetime
import io
import json
import os
import sys
import uuid

import boto3
import pyarrow.parquet as pq

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
bucket, key, *ids = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT"), region_name=os.environ.get("S3_REGION"))
file = pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
wanted = {uuid.UUID(i) for i in ids}
rows = []
for row in file.read().to_pylist():
    if row["id"] in wanted:
        rows.append({
            "id": str(row["id"]),
            "source": row["source"],
            "type": row["type"],
            "timestamp_us": (row["timestamp"] - EPOCH) // datetime.timedelta(microseconds=1),
            "payload": json.loads(row["payload"]),
        })
meta = file.metadata
print(json.dumps({
    "num_rows": meta.num_rows,
    "row_groups": meta.num_row_groups,
    "schema": {f.name: str(f.type) for f in file.schema_arrow},
    "compression": meta.row_group(0).column(0).compression if meta.num_row_groups else None,
    "rows": rows,
}))
