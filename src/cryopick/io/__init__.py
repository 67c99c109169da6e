"""Input/output: micrographs, particle label files, zarr datasets and atomic writes."""

from cryopick.io.atomic import (
    atomic_path,
    atomic_save_bytes,
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    ensure_out_dir,
)
from cryopick.io.labels import (
    EXTENSIONS,
    FORMATS,
    LABEL_SUFFIXES,
    LabelSet,
    Particles,
    deduplicate,
    guess_format,
    read_labels,
    validate_labels,
    write_labels,
)
from cryopick.io.micrographs import (
    SUFFIXES,
    Micrograph,
    find_micrographs,
    micrograph_stem,
    read_micrograph,
    write_mrc,
    write_png,
)
from cryopick.io.zarr_store import is_zarr_dataset, read_zarr_dataset, write_zarr_dataset

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "LABEL_SUFFIXES",
    "SUFFIXES",
    "LabelSet",
    "Micrograph",
    "Particles",
    "atomic_path",
    "atomic_save_bytes",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "deduplicate",
    "ensure_out_dir",
    "find_micrographs",
    "guess_format",
    "is_zarr_dataset",
    "micrograph_stem",
    "read_labels",
    "read_micrograph",
    "read_zarr_dataset",
    "validate_labels",
    "write_labels",
    "write_mrc",
    "write_png",
    "write_zarr_dataset",
]
