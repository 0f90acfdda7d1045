"""otsu-segmentation: an Otsu threshold of each series, written as a DICOM Segmentation.

Follows Tessera's (Kaapana's) operator contract: for every series folder
$WORKFLOW_DIR/$BATCH_NAME/<series>/ it reads the DICOM images in
<series>/$OPERATOR_IN_DIR/, thresholds the whole volume with Otsu's method
(on modality values: RescaleSlope and RescaleIntercept applied) and writes
<series>/$OPERATOR_OUT_DIR/seg.dcm: one binary DICOM Segmentation (SEG) with one
segment, "Otsu foreground" (the voxels above the threshold), one frame per source
slice, in the study and frame of reference of the source series.

Parameters (environment):
  SMOOTHING_SIGMA  Gaussian smoothing before the threshold, in pixels within each
                   slice (default 0: none). The workflow form's `smoothing_sigma`.

A series whose files are not all single-frame grayscale images of one size is
skipped with a message. Exit code: 0 when at least one series was segmented;
1 when none could be; 2 for a broken contract or parameter.

Written for Debian bookworm's pydicom 2.3, numpy 1.24 and scikit-image 0.19.
"""
import datetime
import glob
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from skimage.filters import gaussian, threshold_otsu

try:  # pydicom >= 3
    from pydicom.pixels import pack_bits
except ImportError:  # pydicom 2.x (Debian bookworm)
    from pydicom.pixel_data_handlers.numpy_handler import pack_bits

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SEG_FILE = "seg.dcm"
SEGMENT_LABEL = "Otsu foreground"
SOFTWARE = "tessera otsu-segmentation 0.1.0"
# Attributes copied from the source: the Patient, General Study and Patient Study modules, and the character set.
COPIED = [
    "SpecificCharacterSet",
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientWeight", "PatientSize", "PatientIdentityRemoved", "DeidentificationMethod",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription",
]


class Skip(Exception):
    """A series this operator cannot segment; the message says why."""


def fail(message, code=2):
    print(f"otsu: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def env(name):
    value = os.environ.get(name, "")
    if not value:
        fail(f"the environment variable {name} is not set (is this running under the operator contract?)")
    return value


def number(name, default):
    value = os.environ.get(name, "").strip()
    if not value or value == "None":
        return default
    try:
        parsed = float(value)
    except ValueError:
        fail(f"{name}={value!r} is not a number")
    if not np.isfinite(parsed) or parsed < 0:
        fail(f"{name}={value!r} must be a number >= 0")
    return parsed


def code(value, scheme, meaning):
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def read_slices(in_dir):
    """The DICOM images of a folder (headers and pixels); files that are not DICOM are ignored with a note."""
    slices = []
    for name in sorted(os.listdir(in_dir)):
        path = os.path.join(in_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError) as err:
            print(f"  ignoring {name}: not a DICOM file ({err})", flush=True)
            continue
        slices.append((name, ds))
    return slices


def check_images(slices):
    """Raises Skip unless every file is a single-frame 2D grayscale image of one size."""
    if not slices:
        raise Skip("no DICOM files")
    size = None
    for name, ds in slices:
        if "PixelData" not in ds:
            raise Skip(f"{name} is not an image (SOP class {ds.get('SOPClassUID', '?')}, no Pixel Data)")
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise Skip(f"{name} is a multi-frame image ({ds.NumberOfFrames} frames); only single-frame slices are segmented")
        if int(ds.get("SamplesPerPixel", 1)) != 1 or not str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME"):
            raise Skip(f"{name} is not grayscale (PhotometricInterpretation {ds.get('PhotometricInterpretation', '?')})")
        this = (int(ds.Rows), int(ds.Columns))
        if size is None:
            size = this
        elif this != size:
            raise Skip(f"{name} is {this[0]}x{this[1]}, other slices are {size[0]}x{size[1]}")
        if not ds.get("SOPInstanceUID") or not ds.get("SOPClassUID"):
            raise Skip(f"{name} has no SOP Instance UID or SOP Class UID to refer to")
    return size


def geometry_of(slices):
    """The slice normal when every slice has a position and the same orientation, else None."""
    orientations = [ds.get("ImageOrientationPatient") for _, ds in slices]
    positions = [ds.get("ImagePositionPatient") for _, ds in slices]
    if any(o is None or len(o) != 6 for o in orientations) or any(p is None or len(p) != 3 for p in positions):
        return None
    first = np.array([float(v) for v in orientations[0]])
    if any(not np.allclose([float(v) for v in o], first, atol=1e-4) for o in orientations):
        return None
    normal = np.cross(first[:3], first[3:])
    return normal if np.linalg.norm(normal) > 0.5 else None


def sort_slices(slices):
    """Sorted along the slice normal by ImagePositionPatient, else by InstanceNumber. Returns (slices, has geometry)."""
    normal = geometry_of(slices)
    if normal is not None:
        def along(item):
            return float(np.dot(normal, [float(v) for v in item[1].ImagePositionPatient]))
        return sorted(slices, key=along), True
    print("  no consistent ImagePositionPatient/ImageOrientationPatient: slices ordered by InstanceNumber", flush=True)
    return sorted(slices, key=lambda item: (int(item[1].get("InstanceNumber", 0) or 0), item[0])), False


def volume_of(slices):
    """The modality values (RescaleSlope and RescaleIntercept applied), one plane per slice."""
    planes = []
    for name, ds in slices:
        try:
            pixels = ds.pixel_array.astype(np.float64)
        except Exception as err:  # a transfer syntax without a decoder here, or broken pixel data
            raise Skip(f"cannot decode the pixels of {name} (transfer syntax {ds.file_meta.get('TransferSyntaxUID', '?')}): {err}")
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        planes.append(pixels * slope + intercept)
    return np.stack(planes)


def segment(volume, sigma):
    if sigma > 0:
        # In-plane only: slices are often much thicker than pixels are wide.
        volume = gaussian(volume, sigma=(0, sigma, sigma), preserve_range=True)
    if float(volume.min()) == float(volume.max()):
        raise Skip(f"the volume is uniform (every value is {volume.min():g}): there is nothing to threshold")
    threshold = float(threshold_otsu(volume))
    return volume > threshold, threshold


def new_uid(*entropy):
    """A new UID; a rerun of the same task of the same run makes the same one, so retries do not duplicate the SEG."""
    run = os.environ.get("RUN_ID")
    return generate_uid(entropy_srcs=[run, os.environ.get("TASK_ID", ""), *entropy]) if run else generate_uid()


def build_seg(slices, has_geometry, mask, sigma, threshold):
    """The DICOM Segmentation of the sorted source slices and their mask (frames x rows x columns)."""
    src = slices[0][1]
    rows, columns = mask.shape[1], mask.shape[2]
    sop_uid = new_uid(src.SeriesInstanceUID, "seg-instance", str(sigma))
    series_uid = new_uid(src.SeriesInstanceUID, "seg-series", str(sigma))
    now = datetime.datetime.now()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SEG_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(SEG_FILE, Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False

    for keyword in COPIED:
        if keyword in src:
            setattr(ds, keyword, src.data_element(keyword).value)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in ds:
            setattr(ds, keyword, "")  # type 2: present, possibly empty

    # SOP Common
    ds.SOPClassUID = SEG_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # General Series, Segmentation Series
    ds.Modality = "SEG"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(src.get("SeriesNumber", 0) or 0) + 1000
    ds.SeriesDescription = "Otsu segmentation"
    ds.SeriesDate = ds.InstanceCreationDate
    ds.SeriesTime = ds.InstanceCreationTime
    # Frame of Reference
    if "FrameOfReferenceUID" in src:
        ds.FrameOfReferenceUID = src.FrameOfReferenceUID
        ds.PositionReferenceIndicator = src.get("PositionReferenceIndicator", "")
    # General Equipment, Enhanced General Equipment
    ds.Manufacturer = "Tessera"
    ds.ManufacturerModelName = "otsu-segmentation"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = SOFTWARE
    # General Image, Segmentation Image
    ds.InstanceNumber = 1
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    if not has_geometry:
        ds.PatientOrientation = src.get("PatientOrientation", "")  # type 2C: no plane orientation to go by
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel = "OTSU"
    ds.ContentDescription = f"Otsu threshold {threshold:g}" + (f" after Gaussian smoothing (sigma {sigma:g} px)" if sigma > 0 else "")
    ds.ContentCreatorName = "Tessera^otsu-segmentation"
    ds.SegmentationType = "BINARY"
    ds.SegmentsOverlap = "NO"
    # Derived from lossy-compressed images is lossy too (PS3.3 C.7.6.1.1.5).
    ds.LossyImageCompression = "01" if str(src.get("LossyImageCompression", "00")) == "01" else "00"
    segment_item = Dataset()
    segment_item.SegmentNumber = 1
    segment_item.SegmentLabel = SEGMENT_LABEL
    segment_item.SegmentDescription = "Voxels above the Otsu threshold of the series"
    segment_item.SegmentAlgorithmType = "AUTOMATIC"
    segment_item.SegmentAlgorithmName = "Otsu threshold"
    segment_item.SegmentedPropertyCategoryCodeSequence = Sequence([code("85756007", "SCT", "Tissue")])
    segment_item.SegmentedPropertyTypeCodeSequence = Sequence([code("85756007", "SCT", "Tissue")])
    segment_item.RecommendedDisplayCIELabValue = [34890, 53479, 50167]  # red: L*a*b* (53.2, 80.1, 67.2), scaled to 0..65535
    ds.SegmentSequence = Sequence([segment_item])
    # Image Pixel: 1 bit per pixel, frames packed one after the other, least significant bit first
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 1
    ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = mask.shape[0]

    # Multi-frame Dimension: frames are indexed by segment, then by position (or stack position)
    dim_org = new_uid(src.SeriesInstanceUID, "dimension-organization")
    organization = Dataset()
    organization.DimensionOrganizationUID = dim_org
    ds.DimensionOrganizationSequence = Sequence([organization])
    by_segment = Dataset()
    by_segment.DimensionOrganizationUID = dim_org
    by_segment.DimensionIndexPointer = 0x0062000B  # ReferencedSegmentNumber
    by_segment.FunctionalGroupPointer = 0x0062000A  # SegmentIdentificationSequence
    by_segment.DimensionDescriptionLabel = "ReferencedSegmentNumber"
    by_place = Dataset()
    by_place.DimensionOrganizationUID = dim_org
    if has_geometry:
        by_place.DimensionIndexPointer = 0x00200032  # ImagePositionPatient
        by_place.FunctionalGroupPointer = 0x00209113  # PlanePositionSequence
        by_place.DimensionDescriptionLabel = "ImagePositionPatient"
        ds.DimensionOrganizationType = "3D"
    else:
        by_place.DimensionIndexPointer = 0x00209057  # InStackPositionNumber
        by_place.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
        by_place.DimensionDescriptionLabel = "InStackPositionNumber"
    ds.DimensionIndexSequence = Sequence([by_segment, by_place])

    # Shared Functional Groups: pixel measures and plane orientation
    shared = Dataset()
    measures = Dataset()
    if "PixelSpacing" in src:
        measures.PixelSpacing = src.PixelSpacing
    if "SliceThickness" in src and src.SliceThickness not in (None, ""):
        measures.SliceThickness = src.SliceThickness
    if has_geometry and len(slices) > 1:
        normal = geometry_of(slices)
        along = [float(np.dot(normal, [float(v) for v in s.ImagePositionPatient])) for _, s in slices]
        gaps = np.diff(along)
        if np.all(gaps > 0) and np.allclose(gaps, gaps[0], rtol=0.01, atol=1e-3):
            measures.SpacingBetweenSlices = f"{gaps[0]:.6g}"
    shared.PixelMeasuresSequence = Sequence([measures])
    if has_geometry:
        orientation = Dataset()
        orientation.ImageOrientationPatient = src.ImageOrientationPatient
        shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    # Per-frame Functional Groups: the source slice, the position, the segment
    if has_geometry:
        keys = [tuple(round(float(v), 4) for v in s.ImagePositionPatient) for _, s in slices]
        rank = {k: i + 1 for i, k in enumerate(dict.fromkeys(keys))}
    frames = []
    for i, (_, s) in enumerate(slices):
        frame = Dataset()
        source = Dataset()
        source.ReferencedSOPClassUID = s.SOPClassUID
        source.ReferencedSOPInstanceUID = s.SOPInstanceUID
        source.PurposeOfReferenceCodeSequence = Sequence([code("121322", "DCM", "Source image for image processing operation")])
        derivation = Dataset()
        derivation.DerivationCodeSequence = Sequence([code("113076", "DCM", "Segmentation")])
        derivation.SourceImageSequence = Sequence([source])
        frame.DerivationImageSequence = Sequence([derivation])
        content = Dataset()
        if has_geometry:
            content.DimensionIndexValues = [1, rank[keys[i]]]
        else:
            content.StackID = "1"
            content.InStackPositionNumber = i + 1
            content.DimensionIndexValues = [1, i + 1]
        frame.FrameContentSequence = Sequence([content])
        if has_geometry:
            position = Dataset()
            position.ImagePositionPatient = s.ImagePositionPatient
            frame.PlanePositionSequence = Sequence([position])
        identification = Dataset()
        identification.ReferencedSegmentNumber = 1
        frame.SegmentIdentificationSequence = Sequence([identification])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)

    # Common Instance Reference: the source series and its instances
    referenced = Dataset()
    referenced.SeriesInstanceUID = src.SeriesInstanceUID
    instances = []
    for _, s in slices:
        item = Dataset()
        item.ReferencedSOPClassUID = s.SOPClassUID
        item.ReferencedSOPInstanceUID = s.SOPInstanceUID
        instances.append(item)
    referenced.ReferencedInstanceSequence = Sequence(instances)
    ds.ReferencedSeriesSequence = Sequence([referenced])

    ds.add_new(0x7FE00010, "OB", pack_bits(mask.astype(np.uint8).ravel(), pad=True))
    return ds


def hand_over(path, owner):
    """Gives a file we wrote to the owner of the workflow dir, so that a platform not running as root can clean it up."""
    try:
        os.chown(path, *owner)
    except OSError:
        pass


def process(series_dir, in_name, out_name, sigma, owner):
    in_dir = os.path.join(series_dir, in_name)
    out_dir = os.path.join(series_dir, out_name)
    os.makedirs(out_dir, exist_ok=True)
    hand_over(out_dir, owner)
    target = os.path.join(out_dir, SEG_FILE)
    if os.path.exists(target):
        os.remove(target)  # a rerun never leaves an old result behind
    if not os.path.isdir(in_dir):
        raise Skip(f"no input folder {in_name}/")
    slices = read_slices(in_dir)
    rows, columns = check_images(slices)
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) != 1 or "" in series:
        raise Skip(f"the files belong to {len(series)} series ({', '.join(sorted(series))}); one SEG refers to one series")
    slices, has_geometry = sort_slices(slices)
    mask, threshold = segment(volume_of(slices), sigma)
    ds = build_seg(slices, has_geometry, mask, sigma, threshold)
    ds.save_as(target, write_like_original=False)
    hand_over(target, owner)
    fraction = float(mask.mean())
    print(f"  {len(slices)} slices of {rows}x{columns}, threshold {threshold:g}, foreground {fraction:.1%} -> {out_name}/{SEG_FILE}", flush=True)


def main():
    workflow_dir = env("WORKFLOW_DIR")
    batch_name = env("BATCH_NAME")
    in_name = env("OPERATOR_IN_DIR")
    out_name = env("OPERATOR_OUT_DIR")
    if in_name == out_name:
        fail(f"OPERATOR_IN_DIR and OPERATOR_OUT_DIR are both {in_name!r}: the output would be mixed with the input")
    sigma = number("SMOOTHING_SIGMA", 0.0)
    owner = (os.stat(workflow_dir).st_uid, os.stat(workflow_dir).st_gid)

    series_dirs = sorted(d for d in glob.glob(os.path.join(workflow_dir, batch_name, "*")) if os.path.isdir(d))
    if not series_dirs:
        fail(f"no series folders in {os.path.join(workflow_dir, batch_name)}/")

    skipped = []
    for series_dir in series_dirs:
        uid = os.path.basename(series_dir)
        print(f"otsu: {uid}", flush=True)
        try:
            process(series_dir, in_name, out_name, sigma, owner)
        except Skip as why:
            skipped.append(f"{uid}: {why}")
            print(f"otsu: {uid}: skipped: {why}", file=sys.stderr, flush=True)

    done = len(series_dirs) - len(skipped)
    print(f"otsu: {done} of {len(series_dirs)} series segmented", flush=True)
    if done == 0:
        fail(f"no series could be segmented ({len(skipped)} skipped, reasons above)", code=1)


if __name__ == "__main__":
    main()
