"""xtc's extensions: keywords the spec language has beyond x-transformers 2.31.10.

The keyword table (spec/keywords.json) is the reference's, generated from its signatures; it
cannot hold a keyword the reference lacks. Where a real checkpoint needs something the reference
cannot say, the keyword is declared here instead, by the class whose mapping takes it, as a
keywords.json entry with one more field: `extension`, what the keyword computes and why xtc has
it. `keyword_table()` adds these to the mappings of their class (`layers()`, `side()`, ...) with
`Keyword.extension` set, and keeps them out of `KeywordTable.classes`, which stays the
reference's: the signature test, the coverage tables and `xtc import` (which reads Python that
builds x-transformers models) see the reference alone. `xtc export-python` refuses a spec that
sets one (interop/python_export.py): x-transformers cannot express it. docs/options.md lists
them under "Extensions".

Adding one: an entry here, its support in spec/support.py, a range in spec/constraints.py, and
the compiler code and tests an option needs (docs/design.md, "Adding an option").

>>> sorted(EXTENSIONS["AttentionLayers"])
['norm_eps']
"""

from __future__ import annotations

# owner class -> keyword -> its entry, as keywords.json writes one, with `extension`
EXTENSIONS: dict[str, dict[str, dict]] = {
    "AttentionLayers": {
        "norm_eps": {
            "type": ["float"],
            "default": None,
            "extension": (
                "every RMSNorm of the stack computes x * rsqrt(mean(x^2) + norm_eps) * weight in "
                "float32, as Hugging Face's Llama-family models do (their rms_norm_eps); null: "
                "x-transformers' RMSNorm, which has no epsilon"),
        },
    },
}
