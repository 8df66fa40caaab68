import hashlib
import http.server
import threading

import pytest
import torch

from conftest import synthetic_digits, write_idx, write_mnist
from gencli.data import data_root, find_idx_files, load_idx_dataset, read_idx
from gencli.errors import GencliError
from gencli.training.common import shuffled_batches


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images, _ = synthetic_digits(7, seed=3)
    path = write_idx(tmp_path / ("x.gz" if compress else "x"), images, compress)
    assert torch.equal(read_idx(path), images)


def test_truncated_idx_is_an_error(tmp_path):
    images, _ = synthetic_digits(5, seed=0)
    path = write_idx(tmp_path / "x", images, compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(GencliError, match="truncated"):
        read_idx(path)
    (tmp_path / "y").write_bytes(b"not an idx file")
    with pytest.raises(GencliError, match="not an IDX"):
        read_idx(tmp_path / "y")


@pytest.mark.parametrize("layout", ["flat", "named", "torchvision"])
def test_finds_all_layouts(tmp_path, layout):
    folder = {"flat": tmp_path, "named": tmp_path / "mnist", "torchvision": tmp_path / "MNIST" / "raw"}[layout]
    write_mnist(folder, n_train=20, n_test=10, compress=layout != "torchvision")
    train, test = load_idx_dataset("mnist", tmp_path, download=False)
    assert train.images.shape == (20, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (10,) and test.labels.dtype == torch.int64
    assert find_idx_files("mnist", tmp_path)["train_images"].parent == folder


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("GENCLI_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root(None) == tmp_path / "env"
    monkeypatch.delenv("GENCLI_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root(None) == tmp_path / "cache" / "gencli" / "data"


def test_missing_data_without_network_is_one_clear_error(tmp_path):
    with pytest.raises(GencliError) as info:
        load_idx_dataset("mnist", tmp_path)
    message = str(info.value)
    assert "could not be downloaded" in message and "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message


@pytest.fixture
def mnist_server(tmp_path):
    """A web server on 127.0.0.1 serving a synthetic MNIST, and the md5 of each file."""
    served = write_mnist(tmp_path / "served", n_train=30, n_test=10)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **kw)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    yield f"http://127.0.0.1:{server.server_address[1]}/", md5
    server.shutdown()


def test_download_from_mirror_with_checksums(monkeypatch, tmp_path, mnist_server):
    import torchvision.datasets

    url, md5 = mnist_server
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/", url])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", sorted(md5.items()))
    train, test = load_idx_dataset("mnist", tmp_path / "cache")
    assert len(train) == 30 and len(test) == 10
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_with_wrong_checksum_fails(monkeypatch, tmp_path, mnist_server):
    import torchvision.datasets

    url, md5 = mnist_server
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", [(k, "0" * 32) for k in sorted(md5)])
    with pytest.raises(GencliError, match="could not be downloaded"):
        load_idx_dataset("mnist", tmp_path / "cache")
    assert not list((tmp_path / "cache" / "mnist").glob("*.gz"))


def test_shuffled_batches_reproducible_and_sharded():
    a = shuffled_batches(103, 10, seed=1, epoch=2)
    assert [len(b) for b in a] == [10] * 10 + [3]
    assert torch.equal(torch.cat(a), torch.cat(shuffled_batches(103, 10, seed=1, epoch=2)))
    assert not torch.equal(torch.cat(a), torch.cat(shuffled_batches(103, 10, seed=1, epoch=3)))
    assert sorted(torch.cat(a).tolist()) == list(range(103))
    # Two ranks: as many batches each, disjoint, and batch k of both together is batch k of one process
    # with twice the batch size (one index of the odd 103 is left out this epoch).
    ranks = [shuffled_batches(103, 5, 1, 2, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 11
    assert not set(torch.cat(ranks[0]).tolist()) & set(torch.cat(ranks[1]).tolist())
    for k, whole in enumerate(a[:10]):
        assert sorted(torch.cat([ranks[0][k], ranks[1][k]]).tolist()) == sorted(whole.tolist())
