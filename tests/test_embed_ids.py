"""embed_num_tokens: further embeddings looked up by ids given beside the tokens (`embed_ids`).

Forward and gradient parity, and greedy generation against a loop over the reference's forward,
are feature rows (tests/features.py, `embeddings-embed_num_tokens*`); here: the spec's located
errors, the run-time checks, `loss` against the reference's forward (its training wrapper cannot
pass the ids: it shortens the tokens, not them), and `generate` with left-padded prompts.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import assert_same_gradients, paired_models

import xtc

SPEC = """\
xtc: 1
name: typed
model:
  type: TransformerWrapper
  num_tokens: 64
  max_seq_len: 32
  embed_num_tokens: {sizes}
  attn_layers: {{type: Decoder, dim: 32, depth: 1, heads: 2}}
"""
SIZES = {"type": 4, "segment": 3}


def spec(sizes: str = "{type: 4, segment: 3}") -> xtc.Spec:
    return xtc.loads_spec(SPEC.format(sizes=sizes))


def ids(batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randint(0, size, (batch, length), generator=generator)
            for name, size in SIZES.items()}


@pytest.mark.parametrize(("sizes", "column", "message"), [
    ("{type: 4, 1st: 3}", 31, "name '1st' must be an identifier"),
    ('{type: 4, "a b": 3}', 31, "name 'a b' must be an identifier"),
    ("{type: 0}", 28, "size of type must be an int >= 1, got 0"),
    ("{type: true}", 28, "size of type must be an int >= 1, got True"),
    ("{type: [4]}", 28, "size of type must be an int >= 1, got a sequence"),
])
def test_each_entry_is_checked_where_it_is_written(sizes, column, message):
    with pytest.raises(xtc.SpecError) as caught:
        spec(sizes)
    (problem,) = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert (problem.line, problem.col, problem.code) == (7, column, "out-of-range")
    assert problem.key.startswith("model.embed_num_tokens.") and message in problem.message


def test_every_entry_is_reported_at_once():
    """A bad name (at the name) and a bad size (at the size), together."""
    with pytest.raises(xtc.SpecError) as caught:
        spec("{1st: 4, type: 0, segment: 3}")
    errors = [(d.key, d.col) for d in caught.value.diagnostics if d.severity == "error"]
    assert errors == [("model.embed_num_tokens.1st", 22), ("model.embed_num_tokens.type", 36)]


def test_a_mapping_is_required():
    with pytest.raises(xtc.SpecError, match="expected mapping"):
        spec("4")


def test_the_tables_are_the_references():
    model = xtc.build(spec())
    assert model.embeds["type_embed"].weight.shape == (4, 32)
    assert model.embeds["segment_embed"].weight.shape == (3, 32)
    weights = torch.cat([table.weight.detach().flatten() for table in model.embeds.values()])
    assert 0.5 < weights.std().item() < 1.5  # nn.Embedding's N(0, 1), kept as the reference does


@pytest.mark.parametrize(("given", "error", "message"), [
    ({"type": ids(2, 5)["type"]}, ValueError, r"missing \['segment'\], unexpected \[\]"),
    (ids(2, 5) | {"kind": ids(2, 5)["type"]}, ValueError, r"missing \[\], unexpected \['kind'\]"),
    (ids(2, 4), ValueError, r"embed_ids\['type'\] must be shaped like the tokens \(2, 5\)"),
    (ids(2, 5) | {"type": torch.full((2, 5), 4)}, ValueError, r"must be in \[0, 4\)"),
    (ids(2, 5) | {"type": torch.zeros(2, 5)}, TypeError, "must be an integer tensor"),
    ([1, 2], TypeError, "embed_ids must be a dict"),
])
def test_forward_names_what_is_wrong_with_the_ids(given, error, message):
    model = xtc.build(spec())
    with pytest.raises(error, match=message):
        model(torch.zeros(2, 5, dtype=torch.long), embed_ids=given)


def test_loss_equals_the_cross_entropy_of_the_references_forward():
    """The reference's AutoregressiveWrapper passes embed_ids whole to a forward of the tokens
    but the last, and fails: its forward on the shortened tokens and ids is the oracle."""
    compiled = spec()
    reference, ours = paired_models(compiled)
    tokens, given = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3)), ids(2, 9)
    actual = ours.loss(tokens, embed_ids=given)
    actual.backward()
    logits = reference(tokens[:, :-1], embed_ids={n: i[:, :-1] for n, i in given.items()})
    expected = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:])
    expected.backward()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    assert_same_gradients(compiled, ours, reference)


def test_generate_wants_the_ids_of_every_position_to_come():
    model = xtc.build(spec())
    with pytest.raises(ValueError, match=r"embed_ids\['type'\] must be \(batch, prompt length \+ "
                                         r"max_new_tokens\) = \(2, 8\)"):
        model.generate(torch.zeros(2, 5, dtype=torch.long), 3, embed_ids=ids(2, 5))


@pytest.mark.parametrize("cache", [True, False])
def test_left_padded_prompts_read_the_ids_of_their_own_positions(cache):
    """A prompt shorter than the batch's (prompt_lens) generates what it generates alone: its
    ids move with its tokens, those of the new positions stay."""
    torch.manual_seed(0)
    model = xtc.build(spec()).eval()
    prompts = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(1))
    lengths, new = torch.tensor([6, 4]), 5
    given = ids(2, 6 + new)
    batched = model.generate(prompts, new, temperature=0, cache=cache, prompt_lens=lengths,
                             embed_ids=given)
    for row, length in enumerate(lengths.tolist()):
        alone = {name: torch.cat((i[row : row + 1, :length], i[row : row + 1, 6:]), dim=1)
                 for name, i in given.items()}
        expected = model.generate(prompts[row : row + 1, :length], new, temperature=0,
                                  cache=cache, embed_ids=alone)
        assert torch.equal(batched[row : row + 1], expected)


@pytest.mark.slow
def test_compiled_steps_read_the_ids_of_their_positions():
    torch.manual_seed(0)
    model = xtc.build(spec()).eval()
    prompts, lengths = torch.randint(0, 64, (2, 5)), torch.tensor([5, 3])
    given = ids(2, 11)
    eager = model.generate(prompts, 6, temperature=0, prompt_lens=lengths, embed_ids=given)
    compiled = model.generate(prompts, 6, temperature=0, prompt_lens=lengths, embed_ids=given,
                              compile=True)
    assert torch.equal(compiled, eager)
