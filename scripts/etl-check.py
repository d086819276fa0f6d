#!/usr/bin/env python3
"""What Cumulus ETL's own loader understands of export leaf folders, local or in S3.

    etl-check.py [--rows] FOLDER_OR_URL [FOLDER_OR_URL ...]

For each input, runs the ETL's `FhirNdjsonLoader` (the class `cumulus-etl` uses for an
input folder: it lists NDJSON files recursively, types them by content, copies them, reads
`log.ndjson` for the export group and time and `deleted/` for the deletions) and prints one
JSON object: group name, export time, export URL, per resource type the number of resources
and a digest of their ids, and the deleted ids per type. With two or more inputs it exits 1
unless they all agree (so a test can hand it a local leaf folder and its archived copy).
With --rows, each type also lists every row the ETL read, by id, as a digest of the row as
the ETL parsed it (keys sorted), so a test can check that a delta folder gives the ETL the
very rows the full export gives it for the resources that changed.

Needs the ETL installed (`scripts/etl-check.sh` makes the venv); reads S3 through the ETL's
own fsspec/s3fs setup, with credentials, region and endpoint (AWS_ENDPOINT_URL) from the
environment, as `cumulus-etl` would. The Delta Lake output (Spark) is not involved.
"""

import asyncio
import hashlib
import json
import os
import sys

import cumulus_fhir_support as cfs
import rich

from cumulus_etl import common, feedback
from cumulus_etl.loaders.fhir.ndjson_loader import FhirNdjsonLoader


def row_digest(row: dict) -> str:
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def describe(where: str, rows: bool) -> dict:
    loader = FhirNdjsonLoader(cfs.FsPath(where))
    progress = feedback.Progress()
    with progress:
        types = await loader.detect_resources(progress=progress)
        results = await loader.load_resources(types, progress=progress)
    resources = {}
    for resource_type in sorted(types):
        read = list(common.read_resource_ndjson(cfs.FsPath(results.path), resource_type))
        ids = sorted(row.get("id", "") for row in read)
        resources[resource_type] = {
            "count": len(ids),
            "ids": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        }
        if rows:
            resources[resource_type]["rows"] = {
                row.get("id", ""): row_digest(row) for row in read
            }
    return {
        "input": where,
        "group": results.group_name,
        "exportTime": results.export_datetime.isoformat() if results.export_datetime else None,
        "exportUrl": results.export_url,
        "resources": resources,
        "deleted": {t: sorted(ids) for t, ids in sorted(results.deleted_ids.items())},
    }


async def main(inputs: list[str], rows: bool) -> int:
    # The ETL's progress bars go to rich's console; stdout is for the JSON.
    rich.reconfigure(stderr=True)
    # What `cumulus-etl` does with its --s3-region option before it reads anything.
    common.set_user_fs_options({"s3_region": os.environ.get("AWS_REGION")})
    found = [await describe(where, rows) for where in inputs]
    print(json.dumps(found, indent=2))
    strip = lambda d: {k: v for k, v in d.items() if k != "input"}  # noqa: E731
    if any(strip(f) != strip(found[0]) for f in found[1:]):
        print("The inputs differ (see above).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    with_rows = "--rows" in args
    args = [a for a in args if a != "--rows"]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(args, with_rows)))
