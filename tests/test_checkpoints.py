"""Checkpoints: round trips, atomic replacement, clear errors, and never unpickling."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from poldist.checkpoints import (
    META,
    load_checkpoint,
    load_model,
    metadata_digest,
    model_envs,
    pack_optimizer,
    save_checkpoint,
    save_model,
    unpack_optimizer,
)
from poldist.envs import EnvSpec
from poldist.errors import PoldistError
from poldist.memory import FrameStackMemory, ReplayMemory, pack_binary_fields
from poldist.networks import Architecture, QNetwork, minatar_dqn


def _obs(n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 2, (n, 4, 10, 10), dtype=torch.uint8, generator=g)


def _weights_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.safetensors"))


def _rewrite_meta(directory: Path, edit, *, rehash: bool = True) -> None:
    """Edit ``meta.json``; ``rehash`` also updates its own hash, as a tool that writes wrong but
    self-consistent metadata would (so the schema checks, not the hash, must catch the edit)."""
    meta = json.loads((directory / META).read_text())
    edit(meta)
    if rehash:
        meta["meta_sha256"] = metadata_digest(meta)
    (directory / META).write_text(json.dumps(meta))


@pytest.fixture
def saved(tmp_path: Path, small_net: QNetwork, breakout_spec: EnvSpec) -> Path:
    return save_model(tmp_path / "ckpt", small_net, breakout_spec, extra={"seed": 7})


# --- round trips ---------------------------------------------------------------------------------


def test_save_load_model_round_trip(saved: Path, small_net: QNetwork, breakout_spec: EnvSpec) -> None:
    net, meta = load_model(saved)
    assert not net.training
    assert net.arch == small_net.arch
    obs = _obs()
    with torch.no_grad():
        torch.testing.assert_close(net(obs), small_net(obs), rtol=0, atol=0)
    assert model_envs(meta) == [breakout_spec]
    assert meta["output_kind"] == "q"
    assert meta["seed"] == 7
    assert meta["kind"] == "model"


def test_multi_task_model_round_trip(tmp_path: Path, breakout_spec: EnvSpec) -> None:
    from poldist.envs import make_env_spec

    spec2 = make_env_spec("MinAtar/Asterix-v1")
    net = QNetwork(Architecture((4, 10, 10), ((8, 3, 1),), 32, (3, 5), head_hidden=16))
    save_model(tmp_path / "multi", net, [breakout_spec, spec2], output_kind="logits")
    loaded, meta = load_model(tmp_path / "multi")
    assert model_envs(meta) == [breakout_spec, spec2]
    assert meta["output_kind"] == "logits"
    with torch.no_grad():
        for task in (0, 1):
            torch.testing.assert_close(loaded(_obs(), task), net(_obs(), task), rtol=0, atol=0)


def test_load_from_meta_json_path(saved: Path, small_net: QNetwork) -> None:
    net, _ = load_model(saved / META)
    with torch.no_grad():
        torch.testing.assert_close(net(_obs()), small_net(_obs()), rtol=0, atol=0)


def test_save_leaves_no_temp_files(saved: Path) -> None:
    names = sorted(p.name for p in saved.iterdir())
    assert META in names
    assert len(_weights_files(saved)) == 1
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]
    assert len(names) == 2


def test_files_carry_their_hash_and_meta_lists_them(saved: Path) -> None:
    import hashlib

    meta = json.loads((saved / META).read_text())
    assert meta["format"] == "poldist-checkpoint"
    info = meta["files"]["weights"]
    data = (saved / info["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert info["sha256"][:12] in info["file"]


def test_overwrite_keeps_exactly_one_weights_file(saved: Path, breakout_spec: EnvSpec) -> None:
    first = _weights_files(saved)
    other = QNetwork(minatar_dqn(4, 3))  # different random weights
    save_model(saved, other, breakout_spec)
    files = _weights_files(saved)
    assert len(files) == 1
    assert files != first
    net, _ = load_model(saved)
    with torch.no_grad():
        torch.testing.assert_close(net(_obs()), other(_obs()), rtol=0, atol=0)
    assert not [p for p in saved.iterdir() if p.name.endswith(".tmp")]


def test_resaving_identical_weights_is_stable(saved: Path, small_net: QNetwork, breakout_spec) -> None:
    first = _weights_files(saved)
    save_model(saved, small_net, breakout_spec)
    assert _weights_files(saved) == first
    load_model(saved)


def test_blobs_round_trip_and_stale_blobs_removed(tmp_path: Path) -> None:
    d = tmp_path / "state"
    save_checkpoint(d, {"w": torch.arange(3.0)}, {"step": 1}, blobs={"memory": b"one"})
    save_checkpoint(d, {"w": torch.arange(4.0)}, {"step": 2}, blobs={"memory": b"two"})
    assert len(list(d.glob("memory-*.npz"))) == 1
    ckpt = load_checkpoint(d)
    assert ckpt.blobs == {"memory": b"two"}
    assert ckpt.metadata["step"] == 2
    torch.testing.assert_close(ckpt.tensors["w"], torch.arange(4.0))
    assert load_checkpoint(d, blobs=False).blobs == {}


# --- streamed blobs (a replay memory written without a second copy in RAM) -----------------------

FRAME_FIELDS = {
    "obs": ((4, 8, 8), np.uint8),
    "next_obs": ((4, 8, 8), np.uint8),
    "action": ((), np.int64),
    "reward": ((), np.float32),
    "done": ((), np.float32),
}


def _old_replay_to_bytes(mem: ReplayMemory) -> bytes:
    """``ReplayMemory.to_bytes`` as it was before ``write_npz``: the reference bytes."""
    buf = io.BytesIO()
    arrays = pack_binary_fields({f"field_{k}": v[: mem.size] for k, v in mem.data.items()})
    counters = np.array([mem.capacity, mem.next, mem.size, mem.added], np.int64)
    np.savez(buf, counters=counters, **arrays)
    return buf.getvalue()


def _old_frames_to_bytes(mem: FrameStackMemory) -> bytes:
    """``FrameStackMemory.to_bytes`` as it was before ``write_npz``: the reference bytes."""
    buf = io.BytesIO()
    arrays = {f"field_{k}": v[: mem.size] for k, v in mem.data.items()}
    if mem.next_frame_field is not None:
        arrays["next_refs"] = mem.next_refs[: mem.size]
    counters = np.array(
        [mem.capacity, mem.next, mem.size, mem.added, mem.frame_capacity, mem.frames_added], np.int64
    )
    used = min(mem.frames_added, mem.frame_capacity)
    np.savez(
        buf,
        counters=counters,
        frames=mem.frames[:used],
        refs=mem.refs[: mem.size],
        last_refs=mem.last_refs,
        **arrays,
    )
    return buf.getvalue()


def _filled_memory(kind: str, capacity: int = 50) -> ReplayMemory | FrameStackMemory:
    """A memory that has wrapped around: MinAtar-like (bit-packed frames) or Atari DQN-like."""
    rng = np.random.default_rng(3)
    if kind == "replay":
        mem = ReplayMemory(capacity, {"obs": ((4, 10, 10), np.uint8), "q": ((3,), np.float32)})
        for _ in range(7):
            mem.add(obs=rng.integers(0, 2, (11, 4, 10, 10), np.uint8), q=rng.random((11, 3), np.float32))
        return mem
    mem = FrameStackMemory(capacity, FRAME_FIELDS, next_frame_field="next_obs")
    obs = rng.integers(0, 256, (3, 4, 8, 8), np.uint8)
    for t in range(30):
        nxt = np.concatenate([obs[:, 1:], rng.integers(0, 256, (3, 1, 8, 8), np.uint8)], axis=1)
        done = np.array([t % 9 == 8, False, False])
        mem.add(obs=obs, next_obs=nxt, action=np.full(3, t), reward=np.ones(3, np.float32), done=done)
        obs = nxt.copy()
        obs[done] = np.repeat(rng.integers(0, 256, (int(done.sum()), 1, 8, 8), np.uint8), 4, axis=1)
    return mem


@pytest.mark.parametrize("kind", ["replay", "frames"])
def test_streamed_memory_blob_has_the_bytes_and_hash_of_the_old_to_bytes(tmp_path: Path, kind: str) -> None:
    mem = _filled_memory(kind)
    old = _old_replay_to_bytes(mem) if kind == "replay" else _old_frames_to_bytes(mem)
    assert mem.to_bytes() == old
    d = save_checkpoint(tmp_path / "state", {"w": torch.zeros(2)}, {"step": 1}, {"memory_0": mem.write_npz})
    info = json.loads((d / META).read_text())["files"]["memory_0"]
    digest = hashlib.sha256(old).hexdigest()
    assert info == {"file": f"memory_0-{digest[:12]}.npz", "sha256": digest}
    path = d / info["file"]
    assert path.read_bytes() == old
    assert path.stat().st_mode & 0o777 == 0o644
    names = sorted(p.name for p in d.iterdir())  # no temporary file left
    assert len(names) == 3 and META in names and info["file"] in names and names[-1].startswith("weights-")
    again = mem.empty_like(mem.capacity)
    again.load_bytes(load_checkpoint(d).blobs["memory_0"])
    a, b = mem.all_rows(), again.all_rows()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_checkpoint_with_old_bytes_blob_still_loads(tmp_path: Path) -> None:
    """A checkpoint written from ``to_bytes()`` output (before streaming) loads as before."""
    mem = _filled_memory("frames")
    d = save_checkpoint(tmp_path / "old", {"w": torch.zeros(2)}, {}, {"memory_0": _old_frames_to_bytes(mem)})
    again = mem.empty_like(mem.capacity)
    again.load_bytes(load_checkpoint(d).blobs["memory_0"])
    assert again.frames_added == mem.frames_added
    np.testing.assert_array_equal(again.all_rows()["next_obs"], mem.all_rows()["next_obs"])
    # the same memory streamed lands in the same file: nothing is rewritten under another name
    save_checkpoint(d, {"w": torch.zeros(2)}, {}, {"memory_0": mem.write_npz})
    assert len(list(d.glob("memory_0-*.npz"))) == 1


def test_streaming_save_gives_the_writer_a_file_and_never_calls_to_bytes(tmp_path: Path, monkeypatch) -> None:
    def refuse(self) -> bytes:
        raise AssertionError("to_bytes builds the whole blob in RAM")

    monkeypatch.setattr(ReplayMemory, "to_bytes", refuse)
    monkeypatch.setattr(FrameStackMemory, "to_bytes", refuse)
    memories = [_filled_memory("replay"), _filled_memory("frames")]
    given = []

    def writer(mem):
        def write(f) -> None:
            given.append(f)
            assert not isinstance(f, io.BytesIO) and f.seekable() and f.tell() == 0
            (temp,) = (tmp_path / "state").glob(".memory_*.tmp")  # a temporary file in the checkpoint
            assert os.path.samestat(os.fstat(f.fileno()), temp.stat())
            mem.write_npz(f)

        return write

    blobs = {f"memory_{i}": writer(m) for i, m in enumerate(memories)}
    save_checkpoint(tmp_path / "state", {"w": torch.zeros(2)}, {}, blobs)
    assert len(given) == 2
    loaded = load_checkpoint(tmp_path / "state").blobs
    for i, mem in enumerate(memories):
        again = mem.empty_like(mem.capacity)
        again.load_bytes(loaded[f"memory_{i}"])
        np.testing.assert_array_equal(again.all_rows()["obs"], mem.all_rows()["obs"])


def test_failing_writer_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path: Path) -> None:
    d = tmp_path / "state"
    save_checkpoint(d, {"w": torch.zeros(2)}, {"step": 1}, {"memory_0": b"first"})
    before = sorted(p.name for p in d.iterdir())

    def broken(f) -> None:
        f.write(b"PK half a memory")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(d, {"w": torch.ones(2)}, {"step": 2}, {"memory_0": broken})
    # the new weights file (written before the blob) stays until the next save; nothing else is new
    assert [n for n in sorted(p.name for p in d.iterdir()) if n not in before] == [
        next(p.name for p in d.glob("weights-*") if p.name not in before)
    ]
    ckpt = load_checkpoint(d)
    assert ckpt.metadata["step"] == 1 and ckpt.blobs["memory_0"] == b"first"
    save_checkpoint(d, {"w": torch.ones(2)}, {"step": 3}, {"memory_0": lambda f: f.write(b"third")})
    assert len(list(d.iterdir())) == 3 and load_checkpoint(d).blobs["memory_0"] == b"third"


_RSS_PROBE = """
import resource, sys
import numpy as np, torch
from poldist.checkpoints import save_checkpoint
from poldist.memory import ReplayMemory

def peak() -> int:  # bytes; Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

rows, width = 4096, 1 << 16  # 256 MiB of non-binary bytes (nothing is bit-packed)
mem = ReplayMemory(rows, {"x": ((width,), np.uint8)})
rng = np.random.default_rng(0)
for _ in range(rows // 64):  # 4 MiB batches: the peak so far is the memory itself
    mem.add(x=rng.integers(2, 256, (64, width), dtype=np.uint8))
w = {"w": torch.zeros(4)}
p0 = peak()
if sys.argv[2] == "stream":
    save_checkpoint(sys.argv[1] + "/stream", w, {}, {"memory_0": mem.write_npz})
else:
    save_checkpoint(sys.argv[1] + "/bytes", w, {}, {"memory_0": mem.to_bytes()})
print(rows * width, peak() - p0)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_streaming_save_does_not_hold_the_blob_in_ram(tmp_path: Path) -> None:
    """Peak RSS while writing a 256 MiB memory: streamed, it grows by a chunk or two (16 MiB each);
    from ``to_bytes()`` by the blob's size (which shows the probe would see such a copy)."""
    grown = {}
    for how in ("bytes", "stream"):  # each in its own process, so neither sees the other's peak
        out = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE, str(tmp_path), how],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        blob, grown[how] = map(int, out.stdout.split())
    print(
        f"blob {blob / 2**20:.0f} MiB: peak RSS +{grown['stream'] / 2**20:.0f} MiB streamed, "
        f"+{grown['bytes'] / 2**20:.0f} MiB from to_bytes()"
    )
    if grown["bytes"] < 0.75 * blob:  # the probe must see a full copy for the real check to mean anything
        pytest.skip(f"peak RSS did not show to_bytes()'s copy here (+{grown['bytes']} bytes)")
    assert grown["stream"] < blob / 4
    for how in ("stream", "bytes"):
        (written,) = (tmp_path / how).glob("memory_0-*.npz")
        assert written.stat().st_size > blob


# --- load errors ---------------------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PoldistError, match="no checkpoint"):
        load_model(tmp_path / "does-not-exist")


def test_directory_without_meta(saved: Path) -> None:
    (saved / META).unlink()
    with pytest.raises(PoldistError, match=r"not a complete checkpoint.*meta\.json"):
        load_model(saved)


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoldistError, match="not a complete checkpoint"):
        load_model(tmp_path / "empty")


def test_meta_not_json(saved: Path) -> None:
    (saved / META).write_text("{this is not json")
    with pytest.raises(PoldistError, match="not valid JSON"):
        load_model(saved)


def test_meta_of_another_format(saved: Path) -> None:
    _rewrite_meta(saved, lambda m: m.update(format="something-else"))
    with pytest.raises(PoldistError, match="poldist-checkpoint"):
        load_model(saved)


def test_meta_json_not_an_object(saved: Path) -> None:
    (saved / META).write_text("[1, 2, 3]")
    with pytest.raises(PoldistError, match="poldist-checkpoint"):
        load_model(saved)


def test_truncated_weights(saved: Path) -> None:
    (weights,) = _weights_files(saved)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(PoldistError, match="sha256"):
        load_model(saved)


def test_deleted_weights(saved: Path) -> None:
    (weights,) = _weights_files(saved)
    weights.unlink()
    with pytest.raises(PoldistError, match=f"missing {weights.name}"):
        load_model(saved)


def test_metadata_missing_architecture(saved: Path) -> None:
    _rewrite_meta(saved, lambda m: m.pop("architecture"))
    with pytest.raises(PoldistError, match="architecture"):
        load_model(saved)


@pytest.mark.parametrize("key", ["envs", "output_kind"])
def test_metadata_missing_other_keys(saved: Path, key: str) -> None:
    _rewrite_meta(saved, lambda m: m.pop(key))
    with pytest.raises(PoldistError, match=key):
        load_model(saved)


def test_weights_that_do_not_fit_the_architecture(saved: Path) -> None:
    _rewrite_meta(saved, lambda m: m["architecture"].update(hidden=64))
    with pytest.raises(PoldistError, match="do not fit"):
        load_model(saved)


def test_valid_hash_but_bad_safetensors(saved: Path) -> None:
    import hashlib

    junk = b"\x00" * 64
    (saved / "weights-junk.safetensors").write_bytes(junk)
    _rewrite_meta(
        saved,
        lambda m: m["files"].update(
            weights={"file": "weights-junk.safetensors", "sha256": hashlib.sha256(junk).hexdigest()}
        ),
    )
    with pytest.raises(PoldistError, match="bad weights file"):
        load_model(saved)


def test_files_entry_without_sha_is_a_poldist_error(saved: Path) -> None:
    _rewrite_meta(saved, lambda m: m["files"]["weights"].pop("sha256"))
    with pytest.raises(PoldistError, match="lists its files wrongly"):
        load_model(saved)


# --- never unpickle ------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates (opens for writing) the file at ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_pickle(marker: Path, protocol: int) -> bytes:
    return pickle.dumps(_Payload(marker), protocol=protocol)


def test_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The check below can only fail if the payload works: prove it does."""
    marker = tmp_path / "proof"
    pickle.loads(_evil_pickle(marker, 4)).close()
    assert marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_as_meta_json_is_not_unpickled(saved: Path, tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned-meta"
    (saved / META).write_bytes(_evil_pickle(marker, protocol))
    with pytest.raises(PoldistError):
        load_model(saved)
    assert not marker.exists()


def test_pickle_as_weights_file_is_not_unpickled(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-weights"
    (weights,) = _weights_files(saved)
    weights.write_bytes(_evil_pickle(marker, pickle.HIGHEST_PROTOCOL))
    with pytest.raises(PoldistError, match="sha256"):
        load_model(saved)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_weights_with_matching_hash_is_not_unpickled(saved: Path, tmp_path: Path, how: str) -> None:
    """Even a meta.json that vouches for a pickle's hash must not get it unpickled."""
    import hashlib
    import io

    marker = tmp_path / f"pwned-{how}"
    if how == "pickle":
        data = _evil_pickle(marker, pickle.HIGHEST_PROTOCOL)
    else:
        buf = io.BytesIO()
        torch.save({"w": _Payload(marker)}, buf)
        data = buf.getvalue()
    name = "weights-evil.safetensors"
    (saved / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    _rewrite_meta(saved, lambda m: m["files"].update(weights={"file": name, "sha256": digest}))
    with pytest.raises(PoldistError):
        load_model(saved)
    assert not marker.exists()


# --- optimizer state -----------------------------------------------------------------------------


def _net_and_step(make_opt, seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    opt = make_opt(net.parameters())
    x = torch.randn(8, 5)
    for _ in range(2):
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
    return net, opt, x


OPTIMIZERS = {
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.95, eps=0.01, centered=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.9)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_pack_unpack_optimizer_round_trip(tmp_path: Path, name: str) -> None:
    make_opt = OPTIMIZERS[name]
    net, opt, x = _net_and_step(make_opt)
    tensors, info = pack_optimizer(opt)
    assert tensors, "optimizer state tensors should be packed as tensors"
    # through a real checkpoint: tensors via safetensors, the rest via JSON
    save_checkpoint(tmp_path / "opt", {**net.state_dict(), **tensors}, {"optimizer": info})
    ckpt = load_checkpoint(tmp_path / "opt")

    net2 = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    net2.load_state_dict({k: v for k, v in ckpt.tensors.items() if not k.startswith("optim.")})
    opt2 = make_opt(net2.parameters())
    unpack_optimizer(opt2, ckpt.tensors, ckpt.metadata["optimizer"])

    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["state"].keys() == s2["state"].keys()
    for pid in s1["state"]:
        assert s1["state"][pid].keys() == s2["state"][pid].keys()
        for key, value in s1["state"][pid].items():
            torch.testing.assert_close(torch.as_tensor(s2["state"][pid][key]), torch.as_tensor(value))
    for g1, g2 in zip(s1["param_groups"], s2["param_groups"]):
        assert g1["lr"] == g2["lr"]
        assert g1["params"] == g2["params"]

    # the restored optimizer continues exactly like the original
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    for p1, p2 in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=0, atol=0)


def test_unpacked_state_differs_from_fresh_optimizer() -> None:
    """Guard for the round-trip test: a fresh optimizer would step differently."""
    net, opt, x = _net_and_step(OPTIMIZERS["adam"])
    net2 = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    net2.load_state_dict(net.state_dict())
    opt2 = OPTIMIZERS["adam"](net2.parameters())
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    assert not all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))


# ------------------------------------------------------------------ metadata that cannot lie (issue 21)


def test_an_edited_metadata_value_is_refused(saved: Path) -> None:
    """The edits that made a teacher silently act otherwise: its output kind, its sticky actions."""
    for edit in (
        lambda m: m.update(output_kind="logits"),
        lambda m: m["envs"][0]["settings"].update(sticky_action_prob=0.25),
    ):
        original = (saved / META).read_text()
        _rewrite_meta(saved, edit, rehash=False)
        with pytest.raises(PoldistError, match="does not match its meta_sha256"):
            load_model(saved)
        (saved / META).write_text(original)
        load_model(saved)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_one_character_change_is_refused_or_harmless(saved: Path, data: st.DataObject) -> None:
    """Any one-character change of meta.json is an error, or leaves the same metadata (whitespace)."""
    original = (saved / META).read_text()
    _, meta = load_model(saved)
    i = data.draw(st.integers(0, len(original) - 1), label="position")
    char = data.draw(st.sampled_from(list('0123456789abcdeflqtx.-" ,:{}[]\n')), label="character")
    (saved / META).write_text(original[:i] + char + original[i + 1 :])
    try:
        _, edited = load_model(saved)
    except PoldistError as e:
        assert "\n" not in str(e)
    else:
        assert edited == meta
    finally:
        (saved / META).write_text(original)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(output_kind="qq"), r"output_kind must be one of \['logits', 'q'\]"),
        (
            lambda m: m["envs"][0]["settings"].update(sticky_action_prob=1.5),
            "sticky_action_prob must be at most 1",
        ),
        (
            lambda m: m["envs"][0]["settings"].update(sticky_action_prob="0.1"),
            "sticky_action_prob must be a float",
        ),
        (
            lambda m: m["envs"][0]["settings"].update(difficulty_ramping=1),
            "difficulty_ramping must be a bool",
        ),
        (lambda m: m["envs"][0]["settings"].update(colour="red"), r"unknown fields \['colour'\]"),
        (lambda m: m["envs"][0].pop("domain"), r"envs\[0\]: missing field 'domain'"),
        (lambda m: m["envs"][0].update(domain="atari"), "is not a atari env id"),
        (lambda m: m["envs"][0].update(obs_shape=[4, 10]), "obs_shape must be a list of 3 ints"),
        (lambda m: m["envs"][0].update(obs_shape=[7, 10, 10]), "does not fit MinAtar/Breakout-v1"),
        (lambda m: m["envs"][0].update(n_actions=6), "n_actions 6 does not fit"),
        (lambda m: m["envs"][0].update(env_id="MinAtar/Freeway-v1"), "settings.game disagree"),
        (lambda m: m.update(envs=[]), "envs is empty"),
        (lambda m: m.update(envs={"a": 1}), "envs must be a list"),
        (lambda m: m["architecture"].update(hidden="128"), "hidden must be an int"),
        (lambda m: m["architecture"].update(convs=[[16, 3]]), r"convs\[0\]: convs must be a list of 3 ints"),
        (lambda m: m["architecture"].update(n_actions=[3, 3]), "1 envs for 2 output heads"),
        (lambda m: m["architecture"].update(n_actions=[4]), "head 0 has 4 outputs but its env"),
        (lambda m: m.update(format_version=3), "format_version 3 is not one this poldist reads"),
    ],
)
def test_wrong_but_self_consistent_metadata_is_one_line(saved: Path, edit, message: str) -> None:
    _rewrite_meta(saved, edit)
    with pytest.raises(PoldistError, match=message) as e:
        load_model(saved)
    assert "\n" not in str(e.value)


def test_checkpoints_of_format_1_without_a_metadata_hash_still_load(saved: Path) -> None:
    """Checkpoints written before the hash (the Pong run, other users' runs) load, schema-checked."""
    _rewrite_meta(saved, lambda m: (m.pop("meta_sha256"), m.update(format_version=1)), rehash=False)
    net, meta = load_model(saved)
    assert meta["format_version"] == 1
    _rewrite_meta(saved, lambda m: m.update(output_kind="Q"), rehash=False)
    with pytest.raises(PoldistError, match="output_kind must be one of"):
        load_model(saved)
    _rewrite_meta(saved, lambda m: m.pop("format_version"), rehash=False)
    with pytest.raises(PoldistError, match="format_version None"):
        load_model(saved)
