"""Downloads against a server on 127.0.0.1: checksums, resume, atomic placement, verify, CLI."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from helpers_http import serve
from transpert._errors import ChecksumMismatchError, TranspertInputError
from transpert.cli import main
from transpert.data.fetch import DownloadError, fetch, verify
from transpert.data.manifest import load_manifest, resolve_cache_dir

PAYLOAD = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def write_manifest(tmp_path, url, *, size=len(PAYLOAD), sha256=SHA256, md5=None, name="blob"):
    lines = ["datasets:", f"  {name}:", "    kind: table", f"    url: {url}",
             f"    size: {'null' if size is None else size}",
             f"    sha256: {repr(sha256) if sha256 else 'null'}", f"    md5: {repr(md5) if md5 else 'null'}",
             f"    verified: {'true' if (sha256 or md5) else 'false'}"]
    path = tmp_path / "manifest.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_manifest(path, include_default=False)


@pytest.fixture
def server():
    with serve({"data/blob.bin": PAYLOAD}) as srv:
        yield srv


def test_fetch_downloads_checks_and_places(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"))
    cache = tmp_path / "cache"
    path = fetch("blob", manifest=manifest, cache_dir=cache, show_progress=False)
    assert path == cache / "blob" / "blob.bin"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["blob.bin"]  # no .part left
    # a second fetch verifies the cached file and downloads nothing
    n = len(server.requests)
    assert fetch("blob", manifest=manifest, cache_dir=cache) == path
    assert len(server.requests) == n
    assert verify("blob", manifest=manifest, cache_dir=cache).ok is True


def test_md5_checksum(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"), sha256=None, md5=MD5)
    path = fetch("blob", manifest=manifest, cache_dir=tmp_path / "c")
    result = verify("blob", manifest=manifest, cache_dir=tmp_path / "c")
    assert (result.algorithm, result.actual, result.ok) == ("md5", MD5, True)
    assert path.read_bytes() == PAYLOAD


def test_interrupted_download_is_not_placed_then_resumes(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"))
    cache = tmp_path / "cache"
    target = cache / "blob" / "blob.bin"
    server.cut_after = 12_345
    with pytest.raises(DownloadError, match="interrupted|ended after"):
        fetch("blob", manifest=manifest, cache_dir=cache)
    assert not target.exists()  # atomicity: no final file after a failure
    part = target.with_name("blob.bin.part")
    assert part.stat().st_size == 12_345
    with pytest.raises(TranspertInputError, match="not in the cache"):
        manifest.get("blob").local_file(cache)  # loaders do not take the partial file
    server.cut_after = None
    server.bytes_sent = 0
    assert fetch("blob", manifest=manifest, cache_dir=cache) == target
    assert server.requests[-1][1] == "bytes=12345-"
    assert server.bytes_sent == len(PAYLOAD) - 12_345  # only the rest was transferred
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_resume_against_server_without_range_support(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"))
    server.cut_after = 5_000
    with pytest.raises(DownloadError):
        fetch("blob", manifest=manifest, cache_dir=tmp_path)
    server.cut_after = None
    server.honour_range = False  # answers 200 with the whole file: we must start over, not append
    path = fetch("blob", manifest=manifest, cache_dir=tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    wrong = "0" * 64
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"), sha256=wrong)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match=rf"'blob' has sha256 {SHA256}, the manifest says {wrong}"):
        fetch("blob", manifest=manifest, cache_dir=cache)
    assert list((cache / "blob").iterdir()) == []  # neither the final file nor a .part to resume
    with pytest.raises(ChecksumMismatchError, match="md5"):
        fetch("blob", manifest=write_manifest(tmp_path, server.url("data/blob.bin"), sha256=None,
                                              md5="f" * 32), cache_dir=cache)


def test_size_mismatch(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"), size=len(PAYLOAD) + 1, sha256=None)
    with pytest.raises(DownloadError, match=f"after {len(PAYLOAD)} of {len(PAYLOAD) + 1} bytes"):
        fetch("blob", manifest=manifest, cache_dir=tmp_path)
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"), size=len(PAYLOAD) - 1, sha256=None)
    with pytest.raises(ChecksumMismatchError, match=f"has {len(PAYLOAD)} bytes, the manifest says {len(PAYLOAD) - 1}"):
        fetch("blob", manifest=manifest, cache_dir=tmp_path / "other")


def test_unverified_dataset_reports_its_sha256(tmp_path, server, caplog):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"), size=None, sha256=None)
    with caplog.at_level(logging.WARNING, logger="transpert"):
        fetch("blob", manifest=manifest, cache_dir=tmp_path)
    assert SHA256 in caplog.text and "unverified" in caplog.text
    result = verify("blob", manifest=manifest, cache_dir=tmp_path)
    assert result.ok is None and result.actual == SHA256


def test_verify_moves_a_corrupt_cached_file_aside(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"))
    path = fetch("blob", manifest=manifest, cache_dir=tmp_path)
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))  # one flipped bit, same size
    with pytest.raises(ChecksumMismatchError, match="moved to .*blob.bin.corrupt"):
        verify("blob", manifest=manifest, cache_dir=tmp_path)
    assert not path.exists() and path.with_name("blob.bin.corrupt").exists()
    # fetch again repairs it
    assert fetch("blob", manifest=manifest, cache_dir=tmp_path).read_bytes() == PAYLOAD


def test_http_error(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/missing.bin"))
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch("blob", manifest=manifest, cache_dir=tmp_path)


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSPERT_CACHE", str(tmp_path / "env-cache"))
    assert resolve_cache_dir() == tmp_path / "env-cache"
    assert resolve_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("TRANSPERT_CACHE")
    assert "transpert" in str(resolve_cache_dir())


def test_verify_real_local_files():
    # the shipped test files against the md5 sums of their provenance
    for name in ("datlinger_jurkat_stimulated", "papalexi_thp1", "replogle_k562_rpe1_trade_impact"):
        result = verify(name)
        assert result.ok is True and result.algorithm == "md5"


def test_cli_list_fetch_verify(tmp_path, server, capsys):
    write_manifest(tmp_path, server.url("data/blob.bin"))
    args = ["--manifest", str(tmp_path / "manifest.yaml"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["data", "list", *args]) == 0
    out = capsys.readouterr().out
    assert "vcc_h1_train" in out and "blob" in out and "unverified" in out
    assert main(["data", "fetch", "blob", *args]) == 0
    assert (tmp_path / "cache" / "blob" / "blob.bin").read_bytes() == PAYLOAD
    assert main(["data", "verify", "blob", *args]) == 0
    assert "blob: ok" in capsys.readouterr().out
    (tmp_path / "cache" / "blob" / "blob.bin").write_bytes(b"bad")
    assert main(["data", "verify", "blob", *args]) == 1
    assert "CHECKSUM MISMATCH" in capsys.readouterr().err
    assert main(["data", "fetch", "no_such_dataset", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("transpert data fetch: error: no_such_dataset: ") and "no dataset 'no_such_dataset'" in err


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_fetch_says_what_to_do_and_leaves_no_folder(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}/data/blob.bin"
    write_manifest(tmp_path, url)
    cache = tmp_path / "cache"
    args = ["--manifest", str(tmp_path / "manifest.yaml"), "--cache-dir", str(cache)]
    assert main(["data", "fetch", "blob", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("transpert data fetch: error: blob: the host 127.0.0.1:"), err
    assert "could not be reached (the connection was refused)" in err
    assert "check the network" in err and str(cache / "blob" / "blob.bin") in err and "--cache-dir" in err
    assert "Errno" not in err
    assert not cache.exists()  # no empty cache folder left behind


def test_unknown_host_is_said_in_words(tmp_path, monkeypatch):
    import socket
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    manifest = write_manifest(tmp_path, "https://example.org/data/blob.bin")
    (tmp_path / "cache").mkdir()  # an existing cache folder stays; the dataset's own does not
    with pytest.raises(DownloadError) as info:
        fetch("blob", manifest=manifest, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert msg.startswith("blob: the host example.org could not be reached (its name could not be "
                          "resolved: offline, or no such host)"), msg
    assert "Errno" not in msg and "Name or service" not in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_partial_download_keeps_its_folder(tmp_path, server):
    manifest = write_manifest(tmp_path, server.url("data/blob.bin"))
    server.cut_after = 10_000
    with pytest.raises(DownloadError):
        fetch("blob", manifest=manifest, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "blob" / "blob.bin.part").stat().st_size > 0
