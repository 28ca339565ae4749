"""Minimal safetensors reader/writer using only the standard library and torch.

Format: 8-byte little-endian u64 header length N, then N bytes of JSON header
(space-padded to a multiple of 8), then the raw little-endian tensor data.
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
(offsets relative to the start of the data section) and may hold an optional
"__metadata__" string->string map.

Supported dtypes: F32, F64, I32, I64.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

_DTYPES: Dict[str, torch.dtype] = {
    "F32": torch.float32,
    "F64": torch.float64,
    "I32": torch.int32,
    "I64": torch.int64,
}
_NAMES: Dict[torch.dtype, str] = {v: k for k, v in _DTYPES.items()}
_SIZES: Dict[str, int] = {"F32": 4, "F64": 8, "I32": 4, "I64": 8}

_MAX_HEADER = 100 * 1024 * 1024


def _from_bytes(buf: bytes, dtype: torch.dtype, shape: Tuple[int, ...]) -> torch.Tensor:
    """Build a tensor (owning its memory) from little-endian bytes."""
    if len(buf) == 0:
        return torch.empty(shape, dtype=dtype)
    if sys.byteorder != "little":  # pragma: no cover
        raise RuntimeError("big-endian hosts are not supported")
    return torch.frombuffer(bytearray(buf), dtype=dtype).reshape(shape)


def _to_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian bytes of a tensor (moved to CPU, made contiguous)."""
    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return b""
    if sys.byteorder != "little":  # pragma: no cover
        raise RuntimeError("big-endian hosts are not supported")
    # view as bytes through a flat uint8 reinterpretation
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def load(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Read a safetensors file; returns (tensors by name, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: file too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise ValueError(f"{path}: invalid header length {n}")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    body = memoryview(data)[8 + n :]
    meta_raw = header.pop("__metadata__", None) or {}
    metadata = {str(k): str(v) for k, v in meta_raw.items()}
    tensors: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dt}")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
        count = 1
        for s in shape:
            count *= s
        if end - begin != count * _SIZES[dt] or begin < 0 or end > len(body):
            raise ValueError(f"{path}: tensor {name!r} has inconsistent data_offsets")
        tensors[name] = _from_bytes(bytes(body[begin:end]), _DTYPES[dt], shape)
    return tensors, metadata


def save(
    path: str,
    tensors: Mapping[str, torch.Tensor],
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Write tensors (F32/F64/I32/I64) and optional string metadata atomically."""
    entries = []
    for name, t in tensors.items():
        if t.dtype not in _NAMES:
            raise ValueError(f"tensor {name!r}: unsupported dtype {t.dtype}")
        dt = _NAMES[t.dtype]
        entries.append((-_SIZES[dt], name, dt, t))
    # data laid out by alignment (descending), then by name
    entries.sort(key=lambda e: (e[0], e[1]))

    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for _, name, dt, t in entries:
        raw = _to_bytes(t)
        header[name] = {
            "dtype": dt,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hbytes)))
            f.write(hbytes)
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def run_script(run: Callable[[str, str], None], argv: List[str]) -> int:
    """The command line of an oracle script: `SCRIPT IN.safetensors OUT.safetensors`, single-threaded torch."""
    if len(argv) != 3:
        print(f"usage: {argv[0]} IN.safetensors OUT.safetensors", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    run(argv[1], argv[2])
    return 0
