"""Teachers brought from outside: Stable-Baselines3 ``.zip`` models and CleanRL checkpoints.

Each reader maps the external weights onto the library's own Nature-DQN
:class:`~poldist.networks.QNetwork` and returns it with its env spec and output kind
(:class:`ExternalModel`); :mod:`poldist.teachers` wraps that as a teacher
(``load_teacher``, ``load_sb3_teacher``, ``load_cleanrl_teacher``), so distillation, student
sizing and evaluation work unchanged. Nothing is ever unpickled: weights are read with
``torch.load(..., weights_only=True)`` and a Stable-Baselines3 zip's ``data``
entry is read as JSON, using only its plain fields (its ``:serialized:`` base64
pickles are never decoded).

Supported:

- Stable-Baselines3 ``DQN`` (Q-values, ``output_kind="q"``) and ``PPO``/``A2C``
  (action logits, ``output_kind="logits"``) with the default ``CnnPolicy``
  (NatureCNN, linear head) on Atari frames: the RL Zoo models trained on
  ``<Game>NoFrameskip-v4`` with SB3's ``AtariWrapper`` and 4 stacked frames.
- CleanRL ``dqn_atari`` (``network.0 ... network.9``, Q-values) and ``ppo_atari``
  (``network.*`` + ``actor``, logits) state dicts.

Preprocessing must match what the teacher was trained with. SB3 and CleanRL
Atari agents see 84x84 grayscale frames, frame skip 4 with max-pooling, 4
stacked frames (oldest first) scaled by 1/255 inside the network, no sticky
actions and up to 30 no-op starts: that is this library's ``ALE/<Game>-v5``
spec with ``repeat_action_probability=0``, so ``<Game>NoFrameskip-v4`` maps to
it. (Their training also ends an episode at each life loss and clips rewards;
both only affect training, not what the network is fed. One side effect: their
wrappers press FIRE after every lost life, this library's env only at the start
of an episode, so a Breakout-like teacher that never learned to press FIRE waits
after a lost life until an exploratory action does.) Anything the loaders cannot
match, they refuse with a :class:`~poldist.errors.PoldistError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from poldist.checkpoints import save_model
from poldist.envs import EnvSpec, make_env_spec
from poldist.errors import PoldistError
from poldist.networks import QNetwork, nature_dqn

SB3_SUFFIXES = (".zip",)
CLEANRL_SUFFIXES = (".pt", ".pth", ".cleanrl_model")

_MAX_DATA_BYTES = 64 * 2**20  # the JSON ``data`` entry (a few kB to a few MB in practice)
_MAX_WEIGHTS_BYTES = 2**31  # policy.pth
_NO_FRAMESKIP = re.compile(r"(?P<game>[A-Za-z]+)NoFrameskip-v4")
_ENVPOOL_V5 = re.compile(r"^(?P<game>[A-Za-z]+)-v5$")
_ALE_V5 = re.compile(r"^ALE/(?P<game>[A-Za-z]+)-v5$")
_NATURE_INPUT = (4, 84, 84)

# the Nature CNN's layers in our QNetwork: trunk.0/2/4 convs, trunk.7 the fc layer, heads.0 the output
_TRUNK = ("trunk.0", "trunk.2", "trunk.4", "trunk.7")


def _safe_torch_load(source: Any) -> Any:
    """``torch.load(weights_only=True)`` without its warnings: a refused file is one error line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" before refusing a pickle
        return torch.load(source, map_location="cpu", weights_only=True)


def _refused(source: str, error: Exception) -> PoldistError:
    """The one-line error for a file ``torch.load(weights_only=True)`` refused.

    torch's own message advises re-running with ``weights_only=False``, the one step that would
    run whatever code the file carries; it is not repeated. A file refused for holding Python
    objects gets how to convert it, if trusted, into plain tensors; any other failure says the
    file is not a readable torch file.
    """
    text = str(error)
    if "Weights only load failed" in text or "Unsupported global" in text or "pickle" in text.lower():
        return PoldistError(
            f"{source} holds pickled Python objects besides tensors, and poldist never unpickles files "
            "(unpickling can run any code). If you trust it, save only its tensors from the code that "
            "made it: torch.save(model.state_dict(), 'plain.pt') for a CleanRL network, "
            "model.save('plain.zip') for a Stable-Baselines3 model"
        )
    first = text.splitlines()[0][:200] if text else ""
    return PoldistError(f"{source} is not a readable torch file ({type(error).__name__}: {first})")


def is_external(path: str | Path) -> bool:
    """Whether ``path`` names a file format these loaders read (by its suffix)."""
    return Path(path).suffix.lower() in SB3_SUFFIXES + CLEANRL_SUFFIXES


# --------------------------------------------------------------------------- env resolution


def _game_from_env_id(env_id: str) -> str | None:
    """``"Breakout"`` from ``BreakoutNoFrameskip-v4``, ``ALE/Breakout-v5`` or ``Breakout-v5``."""
    for pattern in (_ALE_V5, _ENVPOOL_V5):
        m = pattern.match(env_id)
        if m:
            return m["game"]
    m = _NO_FRAMESKIP.fullmatch(env_id)
    return m["game"] if m else None


def _atari_spec(env_id: str, path: Path, settings: dict[str, Any]) -> EnvSpec:
    """Our ``ALE/<Game>-v5`` spec for an external Atari teacher.

    ``env_id`` may be ``<Game>NoFrameskip-v4`` (what RL Zoo and CleanRL train on),
    ``ALE/<Game>-v5`` or envpool's ``<Game>-v5``; if empty, the game is read from a
    ``<Game>NoFrameskip-v4`` in the file name (RL Zoo names its files so).
    """
    named = _NO_FRAMESKIP.search(path.name) or _NO_FRAMESKIP.search(path.parent.name)
    named_game = named["game"] if named else None
    if not env_id:
        if named_game is None:
            raise PoldistError(
                f"{path.name} records no env id and its name holds no <Game>NoFrameskip-v4: "
                "pass --env-id (e.g. ALE/Breakout-v5)"
            )
        game = named_game
    else:
        game = _game_from_env_id(env_id)
        if game is None:
            raise PoldistError(
                f"env id {env_id!r} does not fit an external Atari teacher: use ALE/<Game>-v5 "
                "or the id it was trained on, <Game>NoFrameskip-v4 (frame skip and sticky actions "
                "of other ids differ from the teacher's training)"
            )
        if named_game is not None and named_game.lower() != game.lower():
            raise PoldistError(
                f"{path.name} names {named_game}NoFrameskip-v4 but env {env_id!r} was asked for: "
                "a teacher labels only the game it was trained on"
            )
    ale_id = f"ALE/{game}-v5"
    settings = {"repeat_action_probability": 0.0, **settings}
    return make_env_spec(ale_id, **settings)


def _check_actions(n_model: int, spec: EnvSpec, source: str) -> None:
    if n_model != spec.n_actions:
        hint = ""
        if n_model == 18 and not spec.settings.get("full_action_space"):
            hint = " (the model uses the full action set: load it with full_action_space=True)"
        raise PoldistError(
            f"{source} has {n_model} actions, env {spec.env_id} has {spec.n_actions} actions{hint}"
        )


def _build_net(weights: dict[str, torch.Tensor], n_actions: int, hidden: int, source: str) -> QNetwork:
    """Our Nature-DQN QNetwork with ``weights`` (keys already in our names), strictly loaded."""
    arch = replace(nature_dqn(n_actions), hidden=hidden)
    net = QNetwork(arch)
    try:
        net.load_state_dict({k: v.detach().to(torch.float32).clone() for k, v in weights.items()})
    except (RuntimeError, KeyError) as e:
        raise PoldistError(f"{source}: weights do not fit the Nature DQN network ({e})") from e
    net.eval()
    return net


def _rename(sd: Mapping[str, torch.Tensor], mapping: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for theirs, ours in mapping.items():
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = sd[f"{theirs}.{p}"]
    return out


def _check_nature_input(conv0: torch.Tensor, fc: torch.Tensor, source: str) -> None:
    """The first conv must take 4 stacked frames and the fc layer 64 x 7 x 7 features (84x84 input)."""
    if conv0.ndim != 4 or conv0.shape[1] != _NATURE_INPUT[0]:
        channels = conv0.shape[1] if conv0.ndim == 4 else "?"
        raise PoldistError(
            f"{source}: the first conv layer takes {channels} input channels; "
            f"the Atari env gives {_NATURE_INPUT[0]} stacked grayscale frames"
        )
    if fc.ndim != 2 or fc.shape[1] != 64 * 7 * 7:
        raise PoldistError(
            f"{source}: the fc layer takes {fc.shape[1] if fc.ndim == 2 else '?'} features, "
            "not the 3136 of the Nature CNN on 84x84 frames"
        )


def _check_tensors(sd: Any, source: str) -> Mapping[str, torch.Tensor]:
    if not isinstance(sd, Mapping) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()
    ):
        raise PoldistError(f"{source} is not a state dict (a mapping of names to tensors)")
    return sd


# --------------------------------------------------------------------------- Stable-Baselines3


def _read_member(z: zipfile.ZipFile, name: str, limit: int, source: str) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise PoldistError(
            f"{source} is not a Stable-Baselines3 model: the zip has no {name!r} entry"
        ) from None
    if info.file_size > limit:
        raise PoldistError(f"{source}: entry {name!r} is {info.file_size:,} bytes, more than expected")
    return z.read(info)


def read_sb3_zip(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """The JSON ``data``, the ``policy.pth`` state dict and the SB3 version of a saved model.

    Nothing is unpickled: ``data`` is parsed as JSON (its ``:serialized:`` fields are
    left alone) and ``policy.pth`` is read with ``torch.load(..., weights_only=True)``.

    Raises:
        PoldistError: missing file, not a zip, missing entries, bad JSON, or a
            ``policy.pth`` that is not a plain tensor state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise PoldistError(f"no Stable-Baselines3 model at {path}")
    try:
        with zipfile.ZipFile(path) as z:
            raw_data = _read_member(z, "data", _MAX_DATA_BYTES, str(path))
            raw_weights = _read_member(z, "policy.pth", _MAX_WEIGHTS_BYTES, str(path))
            version = ""
            if "_stable_baselines3_version" in z.namelist():
                version = z.read("_stable_baselines3_version")[:64].decode("utf-8", "replace").strip()
    except (zipfile.BadZipFile, OSError) as e:
        raise PoldistError(f"{path} is not a readable zip file ({e})") from e
    try:
        data = json.loads(raw_data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PoldistError(f"{path}: its 'data' entry is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise PoldistError(f"{path}: its 'data' entry is not a JSON object")
    try:
        sd = _safe_torch_load(io.BytesIO(raw_weights))
    except Exception as e:  # UnpicklingError, RuntimeError, ... (the type varies across torch versions)
        raise _refused(f"{path}: policy.pth", e) from e
    return data, dict(_check_tensors(sd, f"{path}: policy.pth")), version


def _plain(entry: Any) -> dict[str, Any]:
    """The plain JSON fields of an SB3 ``data`` entry (``:type:`` kept, ``:serialized:`` dropped)."""
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k != ":serialized:"}


def _numbers(text: Any) -> set[float]:
    """The numbers visible in numpy's (possibly abbreviated) repr of an array."""
    if not isinstance(text, str):
        return set()
    return {float(x) for x in re.findall(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", text)}


def _sb3_policy(data: dict[str, Any], source: str) -> tuple[str, str]:
    """``(algorithm family, policy class name)``: ``("dqn"|"actor_critic", "CnnPolicy"...)``."""
    cls = _plain(data.get("policy_class"))
    module = cls.get("__module__", "")
    m = re.match(r"<function (\w+)\.__init__", str(cls.get("__init__", "")))
    name = m[1] if m else "?"
    if module == "stable_baselines3.dqn.policies":
        family = "dqn"
    elif module == "stable_baselines3.common.policies":
        family = "actor_critic"
    else:
        raise PoldistError(
            f"{source}: policy class {module or '?'}.{name} is not supported; supported are "
            "Stable-Baselines3 DQN, PPO and A2C with CnnPolicy"
        )
    if name not in ("CnnPolicy", "ActorCriticCnnPolicy", "?"):
        raise PoldistError(
            f"{source}: policy {name} is not an image policy; only CnnPolicy (the Nature CNN on "
            "Atari frames) can teach here"
        )
    return family, name


def _sb3_spaces(data: dict[str, Any], source: str) -> tuple[tuple[int, ...], int]:
    """The observation shape (as the network sees it) and the action count, checked."""
    obs = _plain(data.get("observation_space"))
    act = _plain(data.get("action_space"))
    if not str(obs.get(":type:", "")).endswith("spaces.box.Box'>"):
        raise PoldistError(f"{source}: observation space {obs.get(':type:', '?')} is not an image Box")
    shape = tuple(int(s) for s in (obs.get("_shape") or obs.get("shape") or ()))
    dtype = str(obs.get("dtype", "?"))
    if len(shape) != 3 or dtype != "uint8":
        raise PoldistError(
            f"{source}: observations of shape {shape} and dtype {dtype} are not images; "
            f"only Atari CnnPolicy models (uint8 frames {_NATURE_INPUT}) can teach here"
        )
    if shape != _NATURE_INPUT:
        channels_last = _NATURE_INPUT[1:] + _NATURE_INPUT[:1]
        why = (
            "channels last: the CNN was fed untransposed frames"
            if shape == channels_last
            else f"the Atari env gives {_NATURE_INPUT} (4 stacked 84x84 grayscale frames, channels first)"
        )
        raise PoldistError(f"{source}: the network sees observations of shape {shape}; {why}")
    low, high = _numbers(obs.get("low")), _numbers(obs.get("high"))
    if (low and low != {0.0}) or (high and high != {255.0}):
        raise PoldistError(f"{source}: observation bounds are not [0, 255] pixel values")
    if not str(act.get(":type:", "")).endswith("spaces.discrete.Discrete'>"):
        raise PoldistError(f"{source}: action space {act.get(':type:', '?')} is not Discrete")
    try:
        n = int(act["n"])
        start = int(act.get("start", 0))
    except (KeyError, TypeError, ValueError) as e:
        raise PoldistError(f"{source}: its action space records no action count") from e
    if start != 0:
        raise PoldistError(f"{source}: actions start at {start}, not 0")
    return shape, n


def _sb3_policy_kwargs(data: dict[str, Any], source: str) -> dict[str, Any]:
    kwargs = _plain(data.get("policy_kwargs"))
    if kwargs.get("normalize_images", True) is not True:
        raise PoldistError(
            f"{source}: trained with normalize_images={kwargs['normalize_images']!r}: its network "
            "expects other pixel scaling than the 1/255 of this library's Atari frames"
        )
    extractor = kwargs.get("features_extractor_class")
    if extractor is not None and "NatureCNN" not in str(extractor):
        raise PoldistError(f"{source}: features extractor {extractor} is not the Nature CNN")
    return kwargs


def _sb3_weights(
    sd: dict[str, torch.Tensor], family: str, kwargs: dict[str, Any], source: str
) -> tuple[dict[str, torch.Tensor], str]:
    """SB3 policy weights -> our QNetwork names, and the output kind."""
    if family == "dqn":
        feat, head = "q_net.features_extractor", "q_net.q_net.0"
        extra = sorted(k for k in sd if k.startswith("q_net.q_net.") and not k.startswith(head + "."))
        kind = "q"
    else:
        feat = "pi_features_extractor" if "pi_features_extractor.cnn.0.weight" in sd else "features_extractor"
        head = "action_net"
        extra = sorted(k for k in sd if k.startswith("mlp_extractor.policy_net."))
        kind = "logits"
    if extra:
        raise PoldistError(
            f"{source}: its policy has hidden layers after the CNN ({extra[0]}, ...; "
            f"net_arch={kwargs.get('net_arch')!r}); only the default CnnPolicy (linear head) is supported"
        )
    mapping = {f"{feat}.cnn.{i}": f"trunk.{i}" for i in (0, 2, 4)}
    mapping[f"{feat}.linear.0"] = "trunk.7"
    mapping[head] = "heads.0"
    missing = [f"{k}.{p}" for k in mapping for p in ("weight", "bias") if f"{k}.{p}" not in sd]
    if missing:
        raise PoldistError(
            f"{source}: policy.pth lacks {missing[:3]}: not a Nature CNN policy "
            f"(it holds {sorted(sd)[:6]}...)"
        )
    return _rename(sd, mapping), kind


@dataclass(frozen=True)
class ExternalModel:
    """What an external file holds, in the library's terms (``teachers`` wraps it as a teacher).

    Attributes:
        net: the network, rebuilt as a :class:`~poldist.networks.QNetwork` (one head).
        env: the env spec it plays.
        output_kind: ``"q"`` (a DQN's Q-values) or ``"logits"`` (a policy's action logits).
        path: the file it came from.
    """

    net: QNetwork
    env: EnvSpec
    output_kind: str
    path: str


def read_sb3_model(path: str | Path, env_id: str = "", **env_settings: Any) -> ExternalModel:
    """The network of a Stable-Baselines3 ``.zip`` (DQN, PPO or A2C with CnnPolicy on Atari).

    Args:
        path: the saved model (``model.save(path)``, RL Zoo's ``<algo>-<Game>NoFrameskip-v4.zip``).
        env_id: the env it will label: ``ALE/<Game>-v5`` or ``<Game>NoFrameskip-v4``; empty:
            read ``<Game>NoFrameskip-v4`` from the file name.
        **env_settings: overrides of the ``ALE/<Game>-v5`` settings (see
            :func:`~poldist.envs.make_env_spec`), e.g. ``max_num_frames_per_episode``.

    Returns:
        The policy's Q-values (DQN, ``output_kind="q"``) or action logits (PPO/A2C,
        ``"logits"``; equal to SB3's log-probabilities up to a per-state constant).

    Raises:
        PoldistError: unreadable file, a pickle where weights should be, a policy other than
            the default CnnPolicy, observations other than 4 stacked 84x84 uint8 frames, pixel
            scaling other than 1/255, or an action count that differs from the env's.
    """
    path = Path(path)
    data, sd, version = read_sb3_zip(path)
    source = f"Stable-Baselines3 model {path.name}" + (f" (SB3 {version})" if version else "")
    family, _ = _sb3_policy(data, source)
    _, n_actions = _sb3_spaces(data, source)
    kwargs = _sb3_policy_kwargs(data, source)
    weights, kind = _sb3_weights(sd, family, kwargs, source)
    _check_nature_input(weights["trunk.0.weight"], weights["trunk.7.weight"], source)
    spec = _atari_spec(env_id, path, env_settings)
    _check_actions(n_actions, spec, source)
    if weights["heads.0.weight"].shape[0] != n_actions:
        raise PoldistError(f"{source}: its output layer does not have the {n_actions} actions it records")
    net = _build_net(weights, n_actions, int(weights["trunk.7.weight"].shape[0]), source)
    return ExternalModel(net, spec, kind, str(path))


# --------------------------------------------------------------------------- CleanRL


def read_cleanrl_model(path: str | Path, env_id: str, **env_settings: Any) -> ExternalModel:
    """The network of a CleanRL Atari checkpoint (a torch state dict).

    ``dqn_atari`` saves its ``QNetwork`` (``network.0/2/4`` convs, ``network.7`` fc,
    ``network.9`` Q-values: ``output_kind="q"``); ``ppo_atari`` its ``Agent``
    (``network.*`` trunk, ``actor`` logits: ``"logits"``; the critic is ignored).
    Both divide the uint8 frames by 255 in ``forward``.

    Args:
        path: the ``.cleanrl_model`` / ``.pt`` / ``.pth`` file.
        env_id: the env it was trained on and will label (CleanRL records none):
            ``<Game>NoFrameskip-v4``, ``ALE/<Game>-v5`` or envpool's ``<Game>-v5``.
        **env_settings: overrides of the ``ALE/<Game>-v5`` settings.

    Raises:
        PoldistError: no env id, unreadable or pickled-object file, a layout other than
            CleanRL's Nature-DQN network, or an action count that differs from the env's.
    """
    path = Path(path)
    source = f"CleanRL checkpoint {path.name}"
    if not env_id:
        raise PoldistError(f"{path.name}: CleanRL checkpoints record no env: pass --env-id")
    if not path.is_file():
        raise PoldistError(f"no CleanRL checkpoint at {path}")
    try:
        sd = _safe_torch_load(path)
    except Exception as e:  # UnpicklingError, RuntimeError, ... (the type varies across torch versions)
        raise _refused(source, e) from e
    if isinstance(sd, Mapping) and "model_weights" in sd:
        raise PoldistError(f"{source} looks like a C51 (distributional) checkpoint, which is not supported")
    sd = _check_tensors(sd, source)
    mapping = {"network.0": "trunk.0", "network.2": "trunk.2", "network.4": "trunk.4", "network.7": "trunk.7"}
    if "network.9.weight" in sd:
        mapping["network.9"], kind = "heads.0", "q"
    elif "actor.weight" in sd:
        mapping["actor"], kind = "heads.0", "logits"
    else:
        raise PoldistError(
            f"{source}: neither a dqn_atari Q-network (network.9) nor a ppo_atari agent (actor); "
            f"it holds {sorted(sd)[:8]}"
        )
    allowed = {f"{k}.{p}" for k in mapping for p in ("weight", "bias")} | {"critic.weight", "critic.bias"}
    missing = sorted(allowed - set(sd) - {"critic.weight", "critic.bias"})
    unknown = sorted(set(sd) - allowed)
    if missing or unknown:
        raise PoldistError(
            f"{source}: not CleanRL's Nature-DQN layout (missing {missing[:4]}, unexpected {unknown[:4]})"
        )
    weights = _rename(sd, mapping)
    _check_nature_input(weights["trunk.0.weight"], weights["trunk.7.weight"], source)
    spec = _atari_spec(env_id, path, env_settings)
    n_actions = int(weights["heads.0.weight"].shape[0])
    _check_actions(n_actions, spec, source)
    net = _build_net(weights, n_actions, int(weights["trunk.7.weight"].shape[0]), source)
    return ExternalModel(net, spec, kind, str(path))


# --------------------------------------------------------------------------- both


def read_external_model(path: str | Path, env_id: str = "", **env_settings: Any) -> ExternalModel:
    """Load an SB3 ``.zip`` or a CleanRL ``.cleanrl_model``/``.pt``/``.pth``, by its suffix.

    Raises:
        PoldistError: an unknown suffix, or as the loader of that format.
    """
    suffix = Path(path).suffix.lower()
    if suffix in SB3_SUFFIXES:
        return read_sb3_model(path, env_id, **env_settings)
    if suffix in CLEANRL_SUFFIXES:
        return read_cleanrl_model(path, env_id, **env_settings)
    raise PoldistError(
        f"{path}: unknown teacher file type {suffix!r}; expected .zip (Stable-Baselines3) "
        "or .cleanrl_model/.pt/.pth (CleanRL)"
    )


def convert_to_checkpoint(path: str | Path, out: str | Path, env_id: str = "", **env_settings: Any) -> Path:
    """Convert an external teacher once into a poldist checkpoint directory (safetensors + JSON).

    The checkpoint records the env spec and output kind, so it loads with
    :func:`~poldist.teachers.load_teacher` like any teacher, and records where it came
    from (``meta["source"]``: format, file name, sha256).
    """
    teacher = read_external_model(path, env_id, **env_settings)
    path = Path(path)
    source = {
        "format": "stable-baselines3" if path.suffix.lower() in SB3_SUFFIXES else "cleanrl",
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    return save_model(
        out, teacher.net, teacher.env, output_kind=teacher.output_kind, extra={"source": source}
    )
