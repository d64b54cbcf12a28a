"""Writing golden values: one place for the safetensors layout the make_*_golden.py scripts share."""
import json
import struct


def save_f32_safetensors(path, tensors):
    """Writes `tensors` (name -> torch tensor) as a safetensors file, every tensor as little-endian float32, keys sorted;
    returns the size of the data section in bytes."""
    header, offset, blobs = {}, 0, []
    for key in sorted(tensors):
        data = tensors[key].detach().float().contiguous().numpy().astype("<f4").tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    return offset
