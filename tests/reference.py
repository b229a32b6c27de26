"""The parity harness: build the x-transformers model a spec describes, load its weights into
xtc's emitted model, and compare outputs and gradients (docs/design.md, "How parity is proven").

The reference is built from the spec by the inverse of the mapping rule (docs/spec-language.md):
a module's keywords as given, and each nested `attn:`/`ff:`/`cross_attn:` key with
its prefix put back.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
import x_transformers
import x_transformers.continuous
import x_transformers.xval
from torch.nn.attention import SDPBackend, sdpa_kernel
from x_transformers.xl_autoregressive_wrapper import XLAutoregressiveWrapper
from xtc.compiler import compile_graph
from xtc.compiler.state_dict import parameter_rules
from xtc.runtime.layers import forgetful_mask
from xtc.spec import ModuleSpec, Spec

import xtc

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def reference_kwargs(module: ModuleSpec, prefix: str = "") -> dict:
    kwargs = {f"{prefix}{name}": module.options[name] for name in module.given
              if name not in module.children}
    for section, given in module.sections_given.items():
        kwargs.update({f"{prefix}{section}_{name}": module.sections[section][name] for name in given})
    return kwargs


def reference_model(spec: Spec) -> torch.nn.Module:
    """Built under torch.no_grad(): with polar_bias_uniform_init, x-transformers' PolarEmbedding
    initialises its learned bias in place, which autograd refuses outside it (building is
    otherwise the same)."""
    with torch.no_grad():
        return built_reference(spec)


def built_reference(spec: Spec) -> torch.nn.Module:
    model = spec.model
    if model.type == "XTransformer":
        sides = {**reference_kwargs(model.children["encoder"], "enc_"),
                 **reference_kwargs(model.children["decoder"], "dec_")}
        return x_transformers.XTransformer(**reference_kwargs(model), **sides)
    if "attn_layers" not in model.children:  # a bare Encoder / Decoder / CrossAttender
        return getattr(x_transformers, model.type)(**reference_kwargs(model))
    layers = model.children["attn_layers"]
    layer_class = getattr(x_transformers, layers.type)
    modules = {"ContinuousTransformerWrapper": x_transformers.continuous,
               "XValTransformerWrapper": x_transformers.xval}
    wrapper = getattr(modules.get(model.type, x_transformers), model.type)
    return wrapper(**reference_kwargs(model), attn_layers=layer_class(**reference_kwargs(layers)))


def randomise_norm_gains(model: torch.nn.Module) -> None:
    """Gains start at their identity value; move them so that the +1 offset is exercised. And
    weights initialised near zero (l2-normalised embeddings start at std 1e-5) get std 1, since
    their gradients, scaled by 1 / ||w||, would turn float32 rounding into 1e-4 differences."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("gamma", ".g")):
                parameter.normal_(0.0, 0.5)
            elif parameter.numel() > 1 and parameter.std() < 1e-3:
                parameter.normal_(0.0, 1.0)


def paired_models(spec: Spec, seed: int = 0, reference: torch.nn.Module | None = None):
    """The reference (built from the spec unless given) and xtc's model with its weights."""
    torch.manual_seed(seed)
    reference = reference_model(spec) if reference is None else reference
    randomise_norm_gains(reference)
    ours = xtc.build(spec)
    if spec.model is None:  # a composite: {component: state_dict}
        state = {name: reference[name].state_dict() for name in spec.components}
    else:
        state = reference.state_dict()
    ours.load_state_dict(xtc.convert_state_dict(spec, state), strict=True)
    return reference.eval(), ours.eval()


def reference_module(module: ModuleSpec) -> torch.nn.Module:
    """The reference model of one component."""
    return reference_model(Spec(name="component", version=1, path="", sha256="", model=module))


def drawn(model, *args, **kwargs):
    """model(*args, **kwargs) with torch's global generator seeded first. Where a model samples
    in eval mode (gumbel_softmax: Attend.forward draws F.gumbel_softmax's noise, one draw of the
    score matrix's shape per attention, layer by layer), the reference and xtc, each called
    through this, draw the same noise (docs/design.md: where the reference cannot be the
    oracle). A deterministic model is unaffected."""
    torch.manual_seed(0)
    return model(*args, **kwargs)


def assert_parity(spec: Spec, *inputs, flash_only: bool = False, reference=None, **kwargs) -> None:
    """Same outputs and same gradients of a mean-reduced loss, in eval mode, float32. A
    composite's reference is given: its components wired by hand."""
    reference, ours = paired_models(spec, reference=reference)
    expected = drawn(reference, *inputs, **kwargs)
    backend = sdpa_kernel(SDPBackend.FLASH_ATTENTION) if flash_only else nullcontext()
    with backend:
        actual = drawn(ours, *inputs, **kwargs)
        mean_of(actual).backward()
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    mean_of(expected).backward()
    assert_same_gradients(spec, ours, reference)


def assert_same_gradients(spec: Spec, ours: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Each parameter's gradient equals that of the reference parameter it was converted from."""
    parameters = dict(ours.named_parameters(remove_duplicate=False))
    for rule in parameter_rules(compile_graph(spec), components=spec.model is None):
        if rule.emitted not in parameters:  # a buffer (rotary frequencies): no gradient
            continue
        ours_grad = rule.part(ours.get_parameter(rule.emitted).grad)
        reference_grad = rule.read(reference.get_parameter(rule.reference).grad)
        torch.testing.assert_close(ours_grad, reference_grad, rtol=TOLERANCE["rtol"],
                                   atol=gradient_atol(reference_grad),
                                   msg=lambda m, r=rule: f"{r.emitted} vs {r.reference}: {m}")


def gradient_atol(reference_grad: torch.Tensor | None) -> float:
    """The absolute tolerance of a gradient, in units of its largest element. Each element sums
    the contributions of every position, and where those are large and cancel (a probabilistic
    head's exp'd variances give gradients of 400), float32 rounding of the terms leaves about
    1e-7 of the largest one in the small sum, whatever order adds them: one element of 192 was
    7.6e-5 off while its neighbours were 400. A real error (a wrong scale, a dropped term)
    moves elements by a fraction of the tensor's scale, far above 1e-5 of it."""
    if reference_grad is None:  # unused by both: assert_close compares the two Nones
        return TOLERANCE["atol"]
    return TOLERANCE["atol"] * max(1.0, reference_grad.abs().max().item())


TRAINERS = {"AutoregressiveWrapper": x_transformers.AutoregressiveWrapper,
            "XLAutoregressiveWrapper": x_transformers.XLAutoregressiveWrapper}


def assert_same_loss(spec: Spec, tokens: torch.Tensor, **kwargs) -> None:
    """`loss` and its gradients equal those of the training wrapper the spec's `autoregressive:`
    configures, in eval mode. With mask_prob, in training mode (such rows have no dropout),
    both forget the keys of one mask: the one xtc's loss draws from the seed (the reference's
    own draw is switched off and the mask given, as it would mask in eval mode too)."""
    reference, ours = paired_models(spec)
    options = {name: spec.model.training[name] for name in spec.model.training_given}
    wrapper = TRAINERS[spec.model.trainer](reference, **options)
    forgotten = {}
    if getattr(wrapper, "mask_prob", 0) > 0:
        reference.train(), ours.train()
        torch.manual_seed(0)
        forgotten["self_attn_kv_mask"] = forgetful_mask(*tokens.shape, wrapper.mask_prob, "cpu")
        wrapper.mask_prob = 0.0
    actual = drawn(ours.loss, tokens, **kwargs)  # seeded: the mask_prob draw, or a sampler's
    actual.backward()
    with one_head(reference):
        expected = drawn(wrapper, tokens, **kwargs, **forgotten)
    expected.backward()
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    assert_same_gradients(spec, ours, reference)


def mean_of(output) -> torch.Tensor:
    """What the gradients are taken of: the mean of the output, or the sum of the means of the
    tensors of a tuple (an xVal model's logits and numbers, several heads' logits, the next
    embeddings predicted beside the logits), nested ones too."""
    return sum(mean_of(t) for t in output) if isinstance(output, tuple) else output.mean()


def assert_same_greedy_tokens(spec: Spec, prompt: torch.Tensor, steps: int, *, cache: bool = True,
                              reference_cache: bool | None = None, head: int = 0,
                              **kwargs) -> None:
    """Greedy generation from the same weights gives the reference's tokens. reference_cache:
    whether the reference uses its kv cache (default: as ours), for where its cached path is
    known to be wrong and its uncached tokens are the right ones. head: of num_output_heads,
    the one whose logits both sample (see one_head)."""
    reference, ours = paired_models(spec)
    with one_head(reference, head):
        if "embed_ids" in kwargs:  # the reference's generate refuses them: its forward, step by step
            expected = greedy_forward_tokens(reference, prompt, steps, **kwargs)
        else:
            expected = drawn(x_transformers.AutoregressiveWrapper(reference).generate,
                             prompt, steps, temperature=0.0,
                             cache_kv=cache if reference_cache is None else reference_cache,
                             **kwargs)
    chosen = {"head": head} if head else {}
    actual = drawn(ours.generate, prompt, steps, temperature=0, cache=cache, **chosen, **kwargs)
    assert actual.shape == (prompt.shape[0], steps)
    assert torch.equal(actual, expected)


@contextmanager
def one_head(reference: torch.nn.Module, head: int = 0):
    """The reference with one of its num_output_heads alone, for as long as the block runs.
    Its AutoregressiveWrapper's loss and generate read one tensor of logits and fail on the
    tuple of several heads (where the reference cannot be the oracle): with the head's own
    Linear as to_logits they compute what xtc's loss and generate(head=...) read, and the
    gradients land on to_logits.{head}. A model of one head is left as it is."""
    if not getattr(reference, "has_multiple_heads", False):
        yield reference
        return
    heads = reference.to_logits
    reference.to_logits, reference.has_multiple_heads = heads[head], False
    try:
        yield reference
    finally:
        reference.to_logits, reference.has_multiple_heads = heads, True


@torch.no_grad()
def greedy_forward_tokens(reference, prompt: torch.Tensor, steps: int, *,
                          embed_ids: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    """Greedy tokens from the reference's own forward, run on the whole sequence at each step
    with the ids of further embeddings (embed_num_tokens) of its positions: the oracle where
    AutoregressiveWrapper.generate cannot pass them (it raises)."""
    out = prompt
    for _ in range(steps):
        length = out.shape[1]
        logits = reference(out, embed_ids={name: ids[:, :length] for name, ids in embed_ids.items()},
                           **kwargs)
        out = torch.cat((out, logits[:, -1].argmax(dim=-1, keepdim=True)), dim=1)
    return out[:, prompt.shape[1]:]


def assert_same_vectors(spec: Spec, start: torch.Tensor, steps: int, *, cache: bool = True,
                        reference_cache: bool | None = None, temperature: float = 0.0,
                        seed: int | None = None, **kwargs) -> None:
    """A continuous decoder's generated vectors from the same weights equal those of the
    reference's ContinuousAutoregressiveWrapper, to float32 rounding (the two sum in different
    orders). A probabilistic model samples: at temperature 0 both give the means; otherwise
    `seed` seeds torch's global generator before each, so that both draw the same noise.
    reference_cache: as assert_same_greedy_tokens'; kwargs (a condition) go to both."""
    reference, ours = paired_models(spec)
    wrapper = x_transformers.continuous.ContinuousAutoregressiveWrapper(reference)
    sampling = {"temperature": temperature} if reference.probabilistic else {}
    if seed is not None:
        torch.manual_seed(seed)
    expected = wrapper.generate(start, steps, temperature=temperature,
                                cache_kv=cache if reference_cache is None else reference_cache,
                                **kwargs)
    if seed is not None:
        torch.manual_seed(seed)
    actual = ours.generate(start, steps, cache=cache, **sampling, **kwargs)
    assert actual.shape == (*start.shape[:-2], steps, start.shape[-1])
    torch.testing.assert_close(actual, expected, **TOLERANCE)


def assert_same_xval_generation(spec: Spec, prompt: torch.Tensor, numbers: torch.Tensor,
                                steps: int, *, cache: bool = True, **kwargs) -> None:
    """An xVal model's greedy generation from the same weights equals the reference's
    XValAutoregressiveWrapper.generate, greedy through its top-k filter with k = 1 (its
    temperature 0 divides by zero): tokens, numbers (NaN in the same places) and number mask.
    The reference has no kv cache: `cache` is ours. The number token's logit is raised where
    the head has a bias, so that numbers are generated and fed back."""
    reference, ours = paired_models(spec)
    token = spec.model["numerical_token_id"]
    if getattr(reference.to_logits, "bias", None) is not None:
        with torch.no_grad():
            reference.to_logits.bias[token] += 1.5
            ours.to_logits.bias[token] += 1.5
    expected = x_transformers.xval.XValAutoregressiveWrapper(reference).generate(
        prompt, numbers, steps, filter_kwargs={"k": 1}, **kwargs)
    actual = ours.generate(prompt, numbers, steps, temperature=0, cache=cache, **kwargs)
    assert actual.sampled_token_ids.shape == (prompt.shape[0], steps)
    assert torch.equal(actual.sampled_token_ids, expected.sampled_token_ids)
    assert torch.equal(actual.is_number_mask, expected.is_number_mask)
    torch.testing.assert_close(actual.sampled_numbers, expected.sampled_numbers, equal_nan=True,
                               **TOLERANCE)


def assert_same_seq2seq_tokens(spec: Spec, source: torch.Tensor, start: torch.Tensor, steps: int,
                               *, cache: bool = True, reference_cache: bool | None = None,
                               **kwargs) -> None:
    """An encoder-decoder's greedy tokens from the same weights equal the reference's
    XTransformer.generate (kwargs: the source `mask`; reference_cache as for
    assert_same_greedy_tokens)."""
    reference, ours = paired_models(spec)
    expected = reference.generate(source, start, steps, temperature=0.0,
                                  cache_kv=cache if reference_cache is None else reference_cache,
                                  **kwargs)
    actual = ours.generate(source, start, steps, temperature=0, cache=cache, **kwargs)
    assert actual.shape == (source.shape[0], steps)
    assert torch.equal(actual, expected)


def assert_same_xl_tokens(spec: Spec, prompt: torch.Tensor, steps: int, **kwargs) -> None:
    """A Transformer-XL decoder's greedy tokens, past max_seq_len, equal x-transformers'
    XLAutoregressiveWrapper.generate from the same weights."""
    reference, ours = paired_models(spec)
    expected = XLAutoregressiveWrapper(reference).generate(prompt, steps, temperature=0.0, **kwargs)
    actual = ours.generate(prompt, steps, temperature=0, **kwargs)
    assert actual.shape == (prompt.shape[0], steps)
    assert torch.equal(actual, expected)
