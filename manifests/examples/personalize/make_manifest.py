"""Build the example personalization manifest (Parquet) from customers.csv and one prompt template.

    python manifests/examples/personalize/make_manifest.py
writes personalize.parquet beside this script; personalize.yaml holds its shared defaults.
"""

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
TEMPLATE = "A friendly host in {city} greets {first_name} by name and smiles at the camera, warm light"


def main() -> None:
    with open(HERE / "customers.csv", newline="") as f:
        customers = list(csv.DictReader(f))
    rows = [
        {
            "id": f"welcome-{c['customer_id']}",
            "audio": c["voice"],
            "prompt": TEMPLATE.format(**c),
            "tags": [("customer_id", c["customer_id"]), ("city", c["city"])],
        }
        for c in customers
    ]
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("audio", pa.string()),
            ("prompt", pa.string()),
            ("tags", pa.map_(pa.string(), pa.string())),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), HERE / "personalize.parquet")
    print(f"wrote {len(rows)} items to {HERE / 'personalize.parquet'}")


if __name__ == "__main__":
    main()
