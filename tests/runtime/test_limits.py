"""The memory budget (modscope.runtime.limits): sizes declared by files are checked before they
are allocated, as a total across a file's entries, with one-line refusals (issue 29)."""

from __future__ import annotations

import gzip
import io
import os
import zipfile

import numpy as np
import pytest
import torch

from modscope.cli import main
from modscope.errors import ModscopeError
from modscope.runtime.limits import (
    ENV_VAR,
    Budget,
    check_npz,
    check_zip,
    declared_bytes,
    format_size,
    gunzip,
    max_memory,
    memory_limit,
    parse_size,
)


def test_sizes_parse_and_print():
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("8g") == 8 * 2**30
    assert parse_size(str(2**21)) == 2**21
    for bad in ["lots", "-1G", "1X", "100"]:  # "100": below the 1 MiB floor
        with pytest.raises(ModscopeError):
            parse_size(bad)
    assert format_size(312) == "312 B"
    assert format_size(3 * 2**30) == "3 GiB"


def test_declared_bytes_is_exact_past_int64():
    dims = (2**32 - 1,) * 3  # an IDX header's largest dims: the product overflows int64
    assert declared_bytes(dims, 8, "x") == (2**32 - 1) ** 3 * 8
    assert declared_bytes(np.array([3, 4], dtype=np.int64), 4, "x") == 48
    for bad in [(-1, 3), (2.5, 3), ("4", 3)]:
        with pytest.raises(ModscopeError, match="x:"):
            declared_bytes(bad, 4, "x")


def test_the_budget_is_a_total_across_entries():
    b = Budget("file.bin", limit=100)
    b.take(60, "entry a")
    with pytest.raises(ModscopeError) as info:
        b.take(60, "entry b")  # each under the limit, together over it
    message = str(info.value)
    assert "file.bin: entry b declares 60 B" in message and "--max-memory" in message
    assert "\n" not in message


def test_memory_limit_sets_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    default = max_memory()
    assert default > 2**20
    with memory_limit("64M"):
        assert max_memory() == 64 * 2**20 and os.environ[ENV_VAR] == str(64 * 2**20)
    assert ENV_VAR not in os.environ and max_memory() == default
    with memory_limit(None):
        assert max_memory() == default


def test_gunzip_stops_at_the_budget_and_reads_every_member():
    bomb = gzip.compress(bytes(4 * 2**20))  # 4 MiB of zeros in a few KB
    assert len(bomb) < 10_000
    with pytest.raises(ModscopeError, match="decompresses to more than"):
        gunzip(bomb, Budget("z.gz", limit=2**20), "the data")
    two = gzip.compress(b"ab") + gzip.compress(b"cd")
    assert gunzip(two, Budget("z.gz", limit=2**20), "the data") == b"abcd"
    with pytest.raises(ModscopeError, match="corrupt"):
        gunzip(bomb[: len(bomb) // 2], Budget("z.gz", limit=2**30), "the data")


def _zip(entries: dict[str, bytes], deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_and_npz_sizes_are_checked_from_their_headers(tmp_path):
    path = tmp_path / "b.zip"
    path.write_bytes(_zip({"a": bytes(3 * 2**20), "b": bytes(3 * 2**20)}))
    check_zip(path, Budget("b.zip", limit=8 * 2**20))
    with pytest.raises(ModscopeError, match="entry b"):
        check_zip(path, Budget("b.zip", limit=5 * 2**20))
    stored = tmp_path / "s.zip"
    stored.write_bytes(_zip({"a": bytes(3 * 2**20)}, deflate=False))
    check_zip(stored, Budget("s.zip", limit=1), mapped=True)  # stored entries are mapped, not read
    # an .npy header declaring a terabyte in a few bytes
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (2000000000000, 3), }".ljust(117) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode() + bytes(24)
    npz = tmp_path / "x.npz"
    npz.write_bytes(_zip({"w.npy": npy}))
    with pytest.raises(ModscopeError, match="array w of shape"):
        check_npz(npz, Budget("x.npz", limit=2**30))


def test_max_memory_flag_refuses_what_a_file_declares(tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / "wide.pt"
    torch.save({"fc.weight": torch.zeros(1).expand(2**20, 4)}, path)  # 16 MiB declared, 4 bytes stored
    for argv in (["--max-memory", "8M", "score", str(path)], ["score", str(path), "--max-memory", "8M"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "fc.weight" in err[0] and "8 MiB" in err[0], err
    assert main(["score", str(path), "--max-memory", "lots"]) == 2
    assert "--max-memory" in capsys.readouterr().err


def test_a_pickle_memo_index_beyond_the_pickle_is_refused_before_unpickling():
    # C pickle grows its memo array to the index a PUT names: 9 bytes asking for index 2**31 - 1
    # would allocate gigabytes (found by the fuzz suite in a TorchScript data.pkl)
    import pickle

    from modscope.errors import ModscopeError
    from modscope.graphs.files.archives import check_memo_indices

    crafted = b"\x80\x02]r\xff\xff\xff\x7f."  # PROTO 2, EMPTY_LIST, LONG_BINPUT 2**31 - 1, STOP
    with pytest.raises(ModscopeError, match="memo index 2147483647 of a 9-byte pickle"):
        check_memo_indices(crafted, "data.pkl")
    check_memo_indices(pickle.dumps({"a": [1, 2], "b": [1, 2]}, protocol=2), "data.pkl")  # a real one passes
    check_memo_indices(b"\x80\x02]r", "data.pkl")  # truncated: left to the unpickler's own error
