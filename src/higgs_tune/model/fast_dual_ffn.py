"""The DualFFN decoder layer without a host-device synchronisation per layer.

transformers' `HiggsAudioV2DecoderLayer` routes text positions to `input_layernorm` / `mlp` and audio
positions to `audio_input_layernorm` / `audio_mlp` with boolean-mask indexing (`hidden_states[mask]`,
`masked_scatter`, `hidden_states[~mask] += ...`). On a GPU every such operation makes the host wait for the
mask's count, six times per layer in the forward pass and more in the backward: about 500 waits per
training micro-batch for the 28-layer model, each one draining the GPU's queue.

The mask is the same for every layer of a forward pass, so `Route.of` turns it into integer indices once
(one wait: the number of audio positions), and every layer then gathers the positions of each branch with
`index_select` and puts them back with one more `index_select` through the inverse permutation. Shapes no
longer depend on data inside a layer, and the backward of a gather is an index add, which does not wait
either. Each branch sees exactly the rows, in exactly the order, the stock layer gives it, so outputs and
gradients are the stock layer's.

`install` patches `forward` on the layer instances only: weights, parameter names, `state_dict`, peft's
targets and saved checkpoints are transformers' own, and a merged folder loads in plain transformers.
Calls without a mask (audio-only decoding steps, where the stock layer sends everything through the audio
branch and makes no waits) go to the stock forward unchanged.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.models.higgs_audio_v2.modeling_higgs_audio_v2 import HiggsAudioV2DecoderLayer

# Older transformers checkpoint a layer in `GradientCheckpointingLayer.__call__`, which still wraps a patched
# `forward`; newer ones wrap the class's `forward`, which an instance's `forward` bypasses, so the patched
# forward then checkpoints itself.
_CALL_CHECKPOINTS = "__call__" in GradientCheckpointingLayer.__dict__


@dataclass(frozen=True)
class Route:
    """Where a forward pass's text and audio positions are: `order` lists the flat positions (batch x
    sequence) text first, then audio, each in position order (the order boolean indexing gives);
    `inverse` undoes it; `n_text` splits `order` into the two branches."""

    order: torch.Tensor
    inverse: torch.Tensor
    n_text: int

    @classmethod
    def of(cls, audio_token_mask: torch.Tensor) -> Route:
        """The route of one mask [B, L]; reads one number back from the device (the audio count)."""
        flat = audio_token_mask.reshape(-1)
        n_text = flat.numel() - int(flat.sum())
        order = torch.argsort(flat.to(torch.uint8), stable=True)
        positions = torch.arange(flat.numel(), device=flat.device)
        inverse = torch.empty_like(order).scatter_(0, order, positions)
        return cls(order, inverse, n_text)

    def to(self, device: torch.device) -> Route:
        """The same route on `device` (layers of a model split over devices)."""
        if self.order.device == device:
            return self
        return Route(self.order.to(device), self.inverse.to(device), self.n_text)


class RouteCache:
    """The routes of the masks a model is running on, shared by all its layers, keyed by the mask tensor
    itself (its identity, held by a weak reference): the model hands the same mask object to every layer,
    so the first layer computes the route and the others reuse it, as does the backward pass's
    recomputation under gradient checkpointing."""

    def __init__(self) -> None:
        self._routes: dict[int, tuple[weakref.ref, Route]] = {}

    def get(self, mask: torch.Tensor) -> Route:
        key = id(mask)
        hit = self._routes.get(key)
        if hit is not None and hit[0]() is mask:
            return hit[1]
        route = Route.of(mask)
        self._routes[key] = (weakref.ref(mask, lambda _, k=key: self._routes.pop(k, None)), route)
        return route

    def __deepcopy__(self, memo: dict) -> RouteCache:
        return RouteCache()  # a copied model starts with no routes (weak references do not copy)


def install(model: torch.nn.Module) -> int:
    """Route every HiggsAudioV2 decoder layer in `model` by index; returns how many layers it patched.

    Idempotent. Works before or after peft wraps the model (peft wraps the Linear layers inside a decoder
    layer, not the layer)."""
    cache = RouteCache()
    patched = 0
    for module in model.modules():
        if isinstance(module, HiggsAudioV2DecoderLayer) and "forward" not in module.__dict__:
            module._route_cache = cache
            module.forward = types.MethodType(_forward, module)
            patched += 1
    return patched


def is_installed(model: torch.nn.Module) -> bool:
    """Whether `install` has patched the model's decoder layers."""
    layers = [m for m in model.modules() if isinstance(m, HiggsAudioV2DecoderLayer)]
    return bool(layers) and all("forward" in m.__dict__ for m in layers)


def _forward(self: HiggsAudioV2DecoderLayer, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """The patched `forward`: the stock one without a mask, else the routed one (checkpointed as the
    stock layer would be)."""
    mask = kwargs.get("audio_token_mask")
    if mask is None:
        return type(self).forward(self, hidden_states, *args, **kwargs)
    route = self._route_cache.get(mask).to(hidden_states.device)
    if not _CALL_CHECKPOINTS and self.gradient_checkpointing and self.training and torch.is_grad_enabled():
        # As transformers does: the replay must not write a cache.
        kwargs.update(
            use_cache=False, **{name: None for name in ("cache", "past_key_values") if name in kwargs}
        )
        return self._gradient_checkpointing_func(
            partial(_routed_forward, self, route=route, **kwargs), hidden_states, *args
        )
    return _routed_forward(self, hidden_states, *args, route=route, **kwargs)


def _routed_forward(
    self: HiggsAudioV2DecoderLayer,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    attention_mask: torch.Tensor | None = None,
    audio_token_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    cache=None,
    use_cache: bool | None = False,
    *,
    route: Route,
    **kwargs,
) -> torch.Tensor:
    """`HiggsAudioV2DecoderLayer.forward` with a mask, routed through `route` instead of the mask."""
    residual = hidden_states
    normed = _dual(route, hidden_states, self.input_layernorm, self.audio_input_layernorm)
    if cache is not None:  # only when there is one: older transformers name it past_key_values (in kwargs)
        kwargs["cache"] = cache
    hidden_states, _ = self.self_attn(
        hidden_states=normed.to(hidden_states.dtype),
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=use_cache,
        position_embeddings=position_embeddings,
        **kwargs,
    )
    hidden_states = residual + hidden_states
    ffn = _dual(
        route,
        hidden_states,
        lambda text: self.mlp(self.post_attention_layernorm(text)),
        lambda audio: self.audio_mlp(self.audio_post_attention_layernorm(audio)),
    )
    return (hidden_states + ffn).to(hidden_states.dtype)


def _dual(route: Route, x: torch.Tensor, text_fn: Callable, audio_fn: Callable) -> torch.Tensor:
    """`text_fn` over the text positions of `x` [B, L, D] and `audio_fn` over its audio positions, put
    back in place: two gathers, no data-dependent shape."""
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).index_select(0, route.order)
    out = torch.cat([text_fn(rows[: route.n_text]), audio_fn(rows[route.n_text :])])
    return out.index_select(0, route.inverse).view(*shape[:-1], out.shape[-1])
