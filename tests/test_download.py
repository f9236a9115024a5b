"""Downloads against a local HTTP server; safe, atomic extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest
from fileserver import FileServer

from xmhash.data.download import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    Remote,
    extract,
    fetch,
)

BODY = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB block


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remote(url: str | None = None, body: bytes = BODY, **kw) -> Remote:
    return Remote(
        name="data.bin",
        urls=(f"{url}/data.bin",) if url else (),
        sha256=kw.pop("sha256", sha(body)),
        **kw,
    )


def fast(**kw):
    return {"retries": 3, "timeout": 5, "backoff": 0.01, **kw}


def test_fetch_verifies_and_names_the_final_file(tmp_path):
    with FileServer({"data.bin": BODY}) as srv:
        path = fetch(remote(srv.url), tmp_path, **fast())
    assert path == tmp_path / "data.bin" and path.read_bytes() == BODY
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_interrupted_download_resumes_with_range(tmp_path):
    with FileServer({"data.bin": BODY}) as srv:
        srv.drop_after["data.bin"] = 300_000
        path = fetch(remote(srv.url), tmp_path, **fast())
    assert path.read_bytes() == BODY
    (first, r1, s1), (second, r2, s2) = srv.requests
    assert (r1, s1) == (None, 200)
    assert (r2, s2) == ("bytes=300000-", 206)


def test_server_ignoring_range_restarts_from_zero(tmp_path):
    with FileServer({"data.bin": BODY}) as srv:
        srv.drop_after["data.bin"] = 300_000
        srv.ignore_range = True
        path = fetch(remote(srv.url), tmp_path, **fast())
    assert path.read_bytes() == BODY
    assert [s for _, _, s in srv.requests] == [200, 200]
    assert srv.requests[1][1] == "bytes=300000-"  # asked to resume, got the whole file


def test_retries_give_up_with_a_clear_error_and_no_final_file(tmp_path):
    with FileServer({"data.bin": BODY}) as srv:
        srv.drop_after["data.bin"] = 10
        srv.drops = 100
        with pytest.raises(DownloadError, match="data.bin.*failed after 3 attempts"):
            fetch(remote(srv.url), tmp_path, **fast(retries=2))
    assert not (tmp_path / "data.bin").exists()


def test_checksum_mismatch_names_the_file_and_leaves_nothing(tmp_path):
    with FileServer({"data.bin": BODY[:-1] + b"x"}) as srv:
        with pytest.raises(ChecksumError, match=r"data\.bin.*sha256 [0-9a-f]{64}, expected"):
            fetch(remote(srv.url), tmp_path, **fast())
    assert list(tmp_path.iterdir()) == []


def test_mirror_first_then_official_url(tmp_path):
    with FileServer({"data.bin": BODY}) as official, FileServer({}) as mirror:
        path = fetch(remote(official.url), tmp_path, mirrors=[mirror.url + "/"], **fast())
    assert path.read_bytes() == BODY
    assert mirror.requests == [("data.bin", None, 404)]
    assert len(official.requests) == 1


def test_bad_mirror_copy_falls_back_to_the_official_url(tmp_path):
    with FileServer({"data.bin": BODY}) as official, FileServer({"data.bin": b"junk"}) as mirror:
        path = fetch(remote(official.url), tmp_path, mirrors=[mirror.url], **fast())
    assert path.read_bytes() == BODY


def test_local_archive_is_used_offline(tmp_path):
    local = tmp_path / "archive"
    local.mkdir()
    (local / "data.bin").write_bytes(BODY)
    path = fetch(remote("http://127.0.0.1:9"), tmp_path / "dl", local_dirs=[local], **fast())
    assert path.read_bytes() == BODY


def test_manual_file_missing_says_where_to_put_it(tmp_path):
    r = Remote(name="XMediaFeatures.mat", note="register at the PKU XMedia page")
    with pytest.raises(DownloadError, match="registration-only.*XMediaFeatures.mat.*local_dir"):
        fetch(r, tmp_path, local_dirs=[tmp_path / "nothing"])


def test_unknown_checksum_is_recorded(tmp_path):
    with FileServer({"data.bin": BODY}) as srv:
        fetch(remote(srv.url, sha256=None), tmp_path, **fast())
    assert (tmp_path / "data.bin.sha256").read_text().split()[0] == sha(BODY)


def test_corrupt_existing_file_is_fetched_again(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"old")
    with FileServer({"data.bin": BODY}) as srv:
        fetch(remote(srv.url), tmp_path, **fast())
    assert (tmp_path / "data.bin").read_bytes() == BODY


# ---------------------------------------------------------------- extraction


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_extract_round_trip(tmp_path, kind):
    members = {"top/a.txt": b"a", "top/sub/b.bin": BODY[:1000]}
    data = (
        make_zip(members)
        if kind == "zip"
        else make_tar(members, "w:gz" if kind == "tar.gz" else "w")
    )
    (tmp_path / f"x.{kind}").write_bytes(data)
    out = extract(tmp_path / f"x.{kind}", tmp_path / "out")
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(members)
    assert (out / "top/sub/b.bin").read_bytes() == BODY[:1000]


@pytest.mark.parametrize("name", ["../evil.txt", "top/../../evil.txt", "/tmp/evil.txt"])
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_path_traversal_member_is_refused(tmp_path, name, kind):
    members = {"ok.txt": b"ok", name: b"evil"}
    data = make_zip(members) if kind == "zip" else make_tar(members)
    (tmp_path / "a").write_bytes(data)
    with pytest.raises(ArchiveError, match=r"member .*evil\.txt.* refused"):
        extract(tmp_path / "a", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_symlink_member_is_refused(tmp_path):
    (tmp_path / "a.tgz").write_bytes(make_tar({"ok.txt": b"ok"}, links={"link": "/etc/passwd"}))
    with pytest.raises(ArchiveError, match="'link' refused .link"):
        extract(tmp_path / "a.tgz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_truncated_archive_is_detected(tmp_path, kind):
    members = {f"f{i}.bin": bytes([i]) * 20_000 for i in range(5)}
    data = (
        make_zip(members)
        if kind == "zip"
        else make_tar(members, "w:gz" if kind == "tar.gz" else "w")
    )
    (tmp_path / "a").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=r"\ba\b.*(truncated|corrupt)"):
        extract(tmp_path / "a", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failed_extraction_keeps_the_previous_target(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep").write_text("x")
    (tmp_path / "a.zip").write_bytes(make_zip({"../x": b""}))
    with pytest.raises(ArchiveError):
        extract(tmp_path / "a.zip", tmp_path / "out")
    assert (tmp_path / "out/keep").read_text() == "x"


def test_missing_archive_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        extract(tmp_path / "nope.zip", tmp_path / "out")


# ---------------------------------------------------------------- unrecoverable files


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_a_truncated_local_archive_is_never_copied_or_pinned(tmp_path, kind):
    members = {f"f{i}.bin": bytes([i]) * 20_000 for i in range(5)}
    data = (
        make_zip(members) if kind == "zip" else make_tar(members, "w:gz" if "gz" in kind else "w")
    )
    name = f"a.{kind}"
    local, dl = tmp_path / "local", tmp_path / "dl"
    local.mkdir()
    (local / name).write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DownloadError, match=rf"local/{name}: truncated or corrupt.*replace it"):
        fetch(Remote(name, ("http://127.0.0.1:9/x",)), dl, local_dirs=[local], **fast())
    assert not (dl / name).exists() and not (dl / f"{name}.sha256").exists()
    (local / name).write_bytes(data)  # what the message asks for
    fetch(Remote(name, ("http://127.0.0.1:9/x",)), dl, local_dirs=[local], **fast())
    assert (dl / name).read_bytes() == data
    assert (dl / f"{name}.sha256").read_text().split()[0] == sha(data)


def test_a_truncated_download_is_moved_aside_and_fetched_again(tmp_path):
    data = make_zip({"f.bin": b"x" * 50_000})
    (tmp_path / "a.zip").write_bytes(data[:1000])  # pinned by an older run
    (tmp_path / "a.zip.sha256").write_text(f"{sha(data[:1000])}  a.zip\n")
    with FileServer({"a.zip": data}) as srv:
        fetch(Remote("a.zip", (f"{srv.url}/a.zip",)), tmp_path, **fast())
    assert (tmp_path / "a.zip").read_bytes() == data
    assert (tmp_path / "a.zip.corrupt").read_bytes() == data[:1000]
    assert (tmp_path / "a.zip.sha256").read_text().split()[0] == sha(data)


def test_an_archive_that_fails_to_unpack_leads_to_a_working_rerun(tmp_path):
    from dataset_fixtures import wikipedia_archive

    from xmhash.data.datasets import DatasetError
    from xmhash.data.prepared import read_prepared
    from xmhash.data.stage import download_dataset, prepare_dataset

    archive, truth = wikipedia_archive()
    local, dl, out = tmp_path / "local", tmp_path / "downloads", tmp_path / "prepared"
    local.mkdir()
    (local / "wikipedia_dataset.zip").write_bytes(archive)
    options = {"local_dir": str(local), "official_urls": False}
    download_dataset("wikipedia", dl, options)
    (dl / "wikipedia_dataset.zip").write_bytes(archive[:-5000])  # damaged after the download
    with pytest.raises(DatasetError, match="moved aside .*run the workflow again"):
        prepare_dataset("wikipedia", dl, out, options)
    assert not (dl / "manifest.json").exists()  # so the download rule reruns
    assert (dl / "wikipedia_dataset.zip.corrupt").exists() and not out.exists()
    download_dataset("wikipedia", dl, options)  # the rerun the message asks for
    prepare_dataset("wikipedia", dl, out, options)
    assert [it.id for it in read_prepared(out).items] == truth["ids"]


def test_a_deleted_download_reruns_the_download_rule(tmp_path):
    from dataset_fixtures import wikipedia_archive

    from xmhash.data.datasets import DatasetError
    from xmhash.data.stage import download_dataset, prepare_dataset

    local, dl = tmp_path / "local", tmp_path / "downloads"
    local.mkdir()
    (local / "wikipedia_dataset.zip").write_bytes(wikipedia_archive()[0])
    options = {"local_dir": str(local), "official_urls": False}
    download_dataset("wikipedia", dl, options)
    (dl / "wikipedia_dataset.zip").unlink()
    with pytest.raises(DatasetError, match="missing .*run the workflow again"):
        prepare_dataset("wikipedia", dl, tmp_path / "prepared", options)
    assert not (dl / "manifest.json").exists()
