"""A Kaapana-style processing operator for Tessera's Docker runner tests.

For every series folder in $WORKFLOW_DIR/$BATCH_NAME it writes
<series>/<OPERATOR_OUT_DIR>/summary.json: the contract environment, the files
found in <series>/<OPERATOR_IN_DIR>, the run configuration and the
workflow_form values seen as UPPERCASED environment variables.

Test hooks: ALLOCATE_MB=<n> touches n MB of memory first (for memory limits),
EXIT_CODE=<n> exits with n after processing.
"""
import glob
import json
import os
import sys

CONTRACT = ["WORKFLOW_DIR", "BATCH_NAME", "OPERATOR_IN_DIR", "OPERATOR_OUT_DIR",
            "BATCHES_INPUT_DIR", "RUN_ID", "DAG_ID", "TASK_ID", "OPERATOR_LEVEL"]


def allocate(mb):
    # Touch every page so that the memory is really resident, not just reserved.
    chunks = []
    for i in range(mb):
        chunks.append(bytearray(1024 * 1024))
        chunks[-1][::4096] = b"\x01" * len(chunks[-1][::4096])
        if (i + 1) % 16 == 0:
            print(f"allocated {i + 1} MB", flush=True)
    return chunks


def main():
    workflow_dir = os.environ["WORKFLOW_DIR"]
    batch_name = os.environ["BATCH_NAME"]
    in_dir = os.environ.get("OPERATOR_IN_DIR", "")
    out_dir = os.environ["OPERATOR_OUT_DIR"]

    held = allocate(int(os.environ.get("ALLOCATE_MB", "0")))

    with open(os.path.join(workflow_dir, "conf", "conf.json")) as f:
        conf = json.load(f)
    form = conf.get("workflow_form", {})

    series = sorted(glob.glob(os.path.join(workflow_dir, batch_name, "*")))
    for element in series:
        inputs = os.path.join(element, in_dir) if in_dir else None
        files = sorted(os.listdir(inputs)) if inputs and os.path.isdir(inputs) else []
        target = os.path.join(element, out_dir)
        os.makedirs(target, exist_ok=True)
        summary = {
            "series": os.path.basename(element),
            "env": {k: os.environ.get(k) for k in CONTRACT},
            "input_files": files,
            "conf": conf,
            "workflow_form_env": {k: os.environ.get(k.upper()) for k in form},
            "allocated_mb": len(held),
        }
        with open(os.path.join(target, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(f"processed {os.path.basename(element)}: {len(files)} input files", flush=True)

    print(f"done: {len(series)} series", flush=True)
    sys.exit(int(os.environ.get("EXIT_CODE", "0")))


if __name__ == "__main__":
    main()
