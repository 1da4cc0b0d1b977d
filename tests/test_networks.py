"""Networks: the paper's parameter counts, student sizes, shapes, multi-task heads."""

from __future__ import annotations

import json

import pytest
import torch

from poldist.errors import PoldistError
from poldist.networks import (
    LEGACY_MINATAR_STUDENTS,
    Architecture,
    QNetwork,
    adam,
    count_parameters,
    minatar_dqn,
    nature_dqn,
    student_architecture,
)


def _params(arch: Architecture) -> int:
    return count_parameters(QNetwork(arch))


def test_nature_dqn_parameter_count() -> None:
    assert _params(nature_dqn()) == 1_693_362


@pytest.mark.parametrize("size, expected", [("net1", 427_874), ("net2", 113_346), ("net3", 61_954)])
def test_atari_student_parameter_counts(size: str, expected: int) -> None:
    assert _params(student_architecture(nature_dqn(), size)) == expected


def test_teacher_size_student_is_the_teacher() -> None:
    assert student_architecture(nature_dqn(), "teacher") == nature_dqn()
    assert student_architecture(minatar_dqn(4, 3), "teacher") == minatar_dqn(4, 3)


def test_minatar_dqn_parameter_count() -> None:
    # conv 4->16 3x3: 592; fc 16*8*8 -> 128: 131,200; head 128 -> 3: 387
    assert _params(minatar_dqn(4, 3)) == 592 + 131_200 + 387


@pytest.mark.parametrize(
    # net3's first conv grows with the channels: 4.0% on 4 channels, 4.65% on Seaquest's 10
    "size, low, high",
    [("net1", 0.22, 0.28), ("net2", 0.06, 0.08), ("net3", 0.035, 0.047)],
)
@pytest.mark.parametrize("channels, actions", [(4, 3), (4, 6), (7, 3), (10, 6)])  # the five games'
def test_minatar_student_fractions(size: str, low: float, high: float, channels: int, actions: int) -> None:
    teacher = minatar_dqn(channels, actions)
    frac = _params(student_architecture(teacher, size)) / _params(teacher)
    assert low <= frac <= high


def test_minatar_family_shapes_and_the_legacy_widths_stay_reachable() -> None:
    teacher = minatar_dqn(4, 3)
    assert [student_architecture(teacher, s).convs for s in ("net1", "net2")] == [((8, 3, 1),)] * 2
    # net3 halves the grid with a second conv (section 5b's net3-2ck4), not 8 filters and 10 units
    assert student_architecture(teacher, "net3") == student_architecture(teacher, "16,8k4s2/34")
    assert _params(student_architecture(teacher, "8/10")) == 5_459  # net3 before the two-conv shape
    legacy = {s: _params(student_architecture(teacher, w)) for s, w in LEGACY_MINATAR_STUDENTS.items()}
    # the counts of RESULTS.md section 2's students (made before 0.4) on a 4-channel, 3-action game
    assert legacy == {"net1": 33_323, "net2": 9_511, "net3": 5_351}


def test_student_keeps_kernels_strides_heads_and_scale() -> None:
    teacher = nature_dqn(6)
    student = student_architecture(teacher, "net2")
    assert [(k, s) for _, k, s in student.convs] == [(8, 4), (4, 2), (3, 1)]
    assert [c for c, _, _ in student.convs] == [16, 16, 16]
    assert student.hidden == 128
    assert student.n_actions == (6,)
    assert student.obs_shape == teacher.obs_shape
    assert student.obs_scale == teacher.obs_scale


def test_atari_output_shape_on_uint8_input() -> None:
    net = QNetwork(nature_dqn(18))
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    out = net(obs)
    assert out.shape == (2, 18)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_minatar_output_shape_on_uint8_input() -> None:
    net = QNetwork(minatar_dqn(10, 6))
    obs = torch.randint(0, 2, (5, 10, 10, 10), dtype=torch.uint8)
    assert net(obs).shape == (5, 6)


def test_obs_scale_is_applied_to_uint8_input() -> None:
    arch = nature_dqn(4)
    net = QNetwork(arch)
    unscaled = QNetwork(Architecture(arch.obs_shape, arch.convs, arch.hidden, arch.n_actions, 0, 1.0))
    unscaled.load_state_dict(net.state_dict())
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(net(obs), unscaled(obs.float() / 255.0))
    assert not torch.allclose(net(obs), unscaled(obs.float()))


def test_explicit_widths() -> None:
    arch = student_architecture(nature_dqn(), "8,8,8/64")
    assert arch.convs == ((8, 8, 4), (8, 4, 2), (8, 3, 1))
    assert arch.hidden == 64
    out = QNetwork(arch)(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))
    assert out.shape == (3, 18)


def test_explicit_widths_for_minatar() -> None:
    arch = student_architecture(minatar_dqn(4, 3), "12/40")
    assert arch.convs == ((12, 3, 1),)
    assert arch.hidden == 40


@pytest.mark.parametrize("size", ["net4", "huge", "", "16,16,16", "16,16,x/128", "/128"])
def test_unknown_size_raises(size: str) -> None:
    with pytest.raises(PoldistError, match="unknown student size"):
        student_architecture(nature_dqn(), size)


@pytest.mark.parametrize(
    "teacher, size",
    [(nature_dqn(), "16,16/128"), (nature_dqn(), "8,8,8,8/64"), (minatar_dqn(4, 3), "8,8/64")],
)
def test_wrong_conv_count_raises(teacher: Architecture, size: str) -> None:
    with pytest.raises(PoldistError, match="conv layers"):
        student_architecture(teacher, size)


def test_too_small_input_raises() -> None:
    arch = Architecture((4, 10, 10), nature_dqn().convs, 64, (3,))
    with pytest.raises(PoldistError, match="too small"):
        QNetwork(arch)


def test_multi_head_outputs_per_task() -> None:
    arch = Architecture((4, 10, 10), ((16, 3, 1),), 128, (3, 6), head_hidden=128)
    net = QNetwork(arch)
    obs = torch.randint(0, 2, (4, 4, 10, 10), dtype=torch.uint8)
    assert net(obs, 0).shape == (4, 3)
    assert net(obs, 1).shape == (4, 6)
    assert net(obs).shape == (4, 3)  # task 0 by default
    with pytest.raises(IndexError):
        net(obs, 2)
    # shared trunk + two heads with a 128-unit hidden layer each
    trunk = (4 * 9 * 16 + 16) + (16 * 8 * 8 * 128 + 128)
    heads = sum(128 * 128 + 128 + 128 * n + n for n in (3, 6))
    assert count_parameters(net) == trunk + heads


def test_multi_head_heads_are_independent() -> None:
    arch = Architecture((4, 10, 10), ((16, 3, 1),), 32, (3, 3), head_hidden=16)
    net = QNetwork(arch)
    obs = torch.randint(0, 2, (2, 4, 10, 10), dtype=torch.uint8)
    assert not torch.allclose(net(obs, 0), net(obs, 1))
    assert net.features(obs).shape == (2, 32)


def test_student_of_multi_head_teacher_keeps_heads() -> None:
    teacher = Architecture((4, 10, 10), ((16, 3, 1),), 128, (3, 6), head_hidden=128)
    student = student_architecture(teacher, "net1")
    assert student.n_actions == (3, 6)
    assert student.head_hidden == 128
    assert student.convs == ((8, 3, 1),)
    assert student.hidden == 64


@pytest.mark.parametrize(
    "arch",
    [
        nature_dqn(),
        minatar_dqn(10, 6),
        student_architecture(nature_dqn(4), "net3"),
        Architecture((4, 10, 10), ((16, 3, 1),), 128, (3, 6), head_hidden=128),
    ],
    ids=["nature", "minatar", "net3", "multi-head"],
)
def test_architecture_dict_round_trip(arch: Architecture) -> None:
    assert Architecture.from_dict(arch.to_dict()) == arch
    # through JSON, as stored in a checkpoint (tuples become lists)
    restored = Architecture.from_dict(json.loads(json.dumps(arch.to_dict())))
    assert restored == arch
    assert isinstance(restored.convs[0], tuple)
    assert _params(restored) == _params(arch)


def test_fewer_channels_skip_the_padding_with_same_outputs_and_gradients() -> None:
    """A 4-channel input through a 10-channel trunk: as if zero-padded, outputs and gradients."""
    torch.manual_seed(0)
    net = QNetwork(minatar_dqn(10, 6))
    obs = torch.randint(0, 2, (5, 4, 10, 10), dtype=torch.uint8)
    padded = torch.cat([obs, torch.zeros(5, 6, 10, 10, dtype=torch.uint8)], dim=1)
    out = net(obs)
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    ref = net(padded)
    ref_grads = torch.autograd.grad(ref.square().sum(), list(net.parameters()))
    torch.testing.assert_close(out, ref)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)
    assert grads[0][:, 4:].abs().sum() == 0  # the first conv's unused channels learn nothing


def test_adam_matches_the_per_tensor_loop() -> None:
    torch.manual_seed(0)
    a, b = QNetwork(minatar_dqn(4, 3)), QNetwork(minatar_dqn(4, 3))
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = adam(a.parameters(), lr=1e-3, eps=1e-4), torch.optim.Adam(b.parameters(), 1e-3, eps=1e-4)
    obs = torch.randint(0, 2, (8, 4, 10, 10), dtype=torch.uint8)
    for _ in range(3):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            net(obs).square().mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_network_input_is_float_times_scale_bit_for_bit_and_leaves_float_input_alone():
    from poldist.networks import network_input

    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8, generator=g)
    for scale in (1 / 255, 1.0):
        assert torch.equal(network_input(frames, scale), frames.float() * scale)
    floats = frames.float()
    before = floats.clone()
    assert torch.equal(network_input(floats, 1 / 255), before * (1 / 255))
    assert torch.equal(floats, before)  # the caller's float tensor is not scaled in place


def test_explicit_kernels_strides_and_extra_layers_for_minatar() -> None:
    teacher = minatar_dqn(10, 6)
    assert student_architecture(teacher, "8s2/38").convs == ((8, 3, 2),)
    assert student_architecture(teacher, "16,8k3s2/41").convs == ((16, 3, 1), (8, 3, 2))
    assert student_architecture(nature_dqn(), "16,16k3s1,16/64").convs == ((16, 8, 4), (16, 3, 1), (16, 3, 1))
    # one 3x3 stride-2 conv on 10x10: 4x4x8 = 128 features; 10*9*8+8 + 128*38+38 + 38*6+6
    assert _params(student_architecture(teacher, "8s2/38")) == 728 + 4902 + 234


def test_a_size_name_may_stand_for_widths_with_their_own_kernels() -> None:
    """A size table entry may be a widths string (a shape that sets kernels, strides or depth):
    MinAtar's net3."""
    teacher = minatar_dqn(4, 3)
    arch = student_architecture(teacher, "net3")
    assert arch == student_architecture(teacher, "16,8k4s2/34")
    assert arch.convs == ((16, 3, 1), (8, 4, 2)) and arch.hidden == 34
    # 4*9*16+16 + 16*16*8+8 (8x8 -> 3x3 cells) + 72*34+34 + 34*3+3
    assert _params(arch) == 592 + 2056 + 2482 + 105


@pytest.mark.parametrize("size", ["8,8/64", "8,8k3/64", "8,8s2/64"])
def test_extra_conv_layer_needs_its_kernel_and_stride(size: str) -> None:
    with pytest.raises(PoldistError, match="give each extra layer its kernel and stride"):
        student_architecture(minatar_dqn(4, 3), size)


@pytest.mark.parametrize("size", ["8s0/38", "8k0/38"])
def test_zero_kernel_or_stride_raises(size: str) -> None:
    with pytest.raises(PoldistError, match="at least 1"):
        student_architecture(minatar_dqn(4, 3), size)
