"""dcm2nifti: converts each series of the batch to NIfTI with dcm2niix.

Follows Tessera's (Kaapana's) operator contract: for every series folder
$WORKFLOW_DIR/$BATCH_NAME/<series>/ it converts the DICOM files in
<series>/$OPERATOR_IN_DIR/ and writes <series>/$OPERATOR_OUT_DIR/*.nii.gz
(*.nii with COMPRESS=False) and the BIDS-style .json sidecar of each volume.

Parameters (environment):
  COMPRESS  True (default) / False: gzip the NIfTI files (the workflow form's
            `compress`, as Python's str() writes a boolean).

Exit code: 0 when every series gave at least one NIfTI file; 1 otherwise, after
trying all of them, with one line per failed series on stderr; 2 for a broken
contract (a variable missing, no series folder).
"""
import glob
import os
import shutil
import subprocess
import sys

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def fail(message, code=2):
    print(f"dcm2nifti: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def env(name):
    value = os.environ.get(name, "")
    if not value:
        fail(f"the environment variable {name} is not set (is this running under the operator contract?)")
    return value


def flag(name, default):
    """A boolean form value: Python's str() gives True/False; true/1/yes/y are accepted too."""
    value = os.environ.get(name, "").strip().lower()
    if not value or value == "none":
        return default
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    fail(f"{name}={os.environ[name]!r} is not a boolean (True or False)")


def owner_of(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


def hand_over(path, owner):
    """Gives a file we wrote to the owner of the workflow dir, so that a platform not running as root can clean it up."""
    try:
        os.chown(path, *owner)
    except OSError:
        pass


def clear(out_dir):
    """A rerun overwrites: dcm2niix would otherwise add suffixes next to the old files."""
    for entry in os.listdir(out_dir):
        path = os.path.join(out_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def convert(series_dir, in_name, out_name, compress, owner):
    """Converts one series; returns (number of NIfTI files written, or None) and an error message."""
    in_dir = os.path.join(series_dir, in_name)
    out_dir = os.path.join(series_dir, out_name)
    if not os.path.isdir(in_dir):
        return None, f"no input folder {in_name}/"
    inputs = [f for f in os.listdir(in_dir) if os.path.isfile(os.path.join(in_dir, f))]
    if not inputs:
        return None, f"{in_name}/ is empty"
    os.makedirs(out_dir, exist_ok=True)
    hand_over(out_dir, owner)
    clear(out_dir)
    cmd = [
        "dcm2niix",
        "-z", "y" if compress else "n",
        "-b", "y",        # the JSON sidecar
        "-ba", "y",       # without patient data in the sidecar
        "-f", "%s_%d",    # <series number>_<series description>
        "-w", "1",        # overwrite rather than add suffixes
        "-o", out_dir,
        in_dir,
    ]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in result.stdout.splitlines():
        print(f"  {line}", flush=True)
    written = sorted(f for f in os.listdir(out_dir) if f.endswith(NIFTI_SUFFIXES))
    for f in os.listdir(out_dir):
        hand_over(os.path.join(out_dir, f), owner)
    if not written:
        why = f"dcm2niix exited with {result.returncode}" if result.returncode else "dcm2niix found nothing to convert"
        return None, f"no NIfTI from {len(inputs)} file(s) in {in_name}/ ({why}; are they DICOM images of one volume?)"
    if result.returncode != 0:
        print(f"  dcm2niix exited with {result.returncode} but wrote {len(written)} NIfTI file(s)", flush=True)
    return written, None


def main():
    workflow_dir = env("WORKFLOW_DIR")
    batch_name = env("BATCH_NAME")
    in_name = env("OPERATOR_IN_DIR")
    out_name = env("OPERATOR_OUT_DIR")
    if in_name == out_name:
        fail(f"OPERATOR_IN_DIR and OPERATOR_OUT_DIR are both {in_name!r}: the output would overwrite the input")
    compress = flag("COMPRESS", True)
    owner = owner_of(workflow_dir)

    series_dirs = sorted(d for d in glob.glob(os.path.join(workflow_dir, batch_name, "*")) if os.path.isdir(d))
    if not series_dirs:
        fail(f"no series folders in {os.path.join(workflow_dir, batch_name)}/")

    failures = []
    for series_dir in series_dirs:
        uid = os.path.basename(series_dir)
        print(f"dcm2nifti: {uid}", flush=True)
        written, error = convert(series_dir, in_name, out_name, compress, owner)
        if error:
            failures.append(f"{uid}: {error}")
            print(f"dcm2nifti: {uid}: FAILED: {error}", file=sys.stderr, flush=True)
        else:
            print(f"dcm2nifti: {uid}: {', '.join(written)}", flush=True)

    done = len(series_dirs) - len(failures)
    print(f"dcm2nifti: {done} of {len(series_dirs)} series converted", flush=True)
    if failures:
        print(f"dcm2nifti: error: {len(failures)} series gave no NIfTI file:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
