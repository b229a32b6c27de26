"""One class per concept: classes of a module that would read the same are defined once.

Lowering gives each layer stack its classes under its own prefix (a PaLI composite's Vit,
PaliEncoder and PaliDecoder; an XTransformer's Encoder and Decoder), so stacks whose
feedforwards, attentions or blocks agree would get copies that differ only in their names and
in the Config they are built from. `share_classes` keeps the first of each, names it for its
concept alone where that name is free (`FeedForward` for VitFeedForward and
PaliEncoderFeedForward), annotates it with the union of the configs it is built from, and points
every use at it. Configs with the same fields and defaults are one class too, and so are models
(a composite's components) that agree once their configs are shared. Attributes keep their
names, so state-dict keys do not change.

Two classes are the same when their template renders the same code for both with their names
blanked (and, for sublayers and blocks, the config they annotate): what counts is the code a
reader would see twice, not the payload it came from (feedforwards of different widths both
read config.ff_inner_dim). A model's config is its default, so models with different configs
stay apart.
"""

from __future__ import annotations

from dataclasses import replace

from xtc.spec.names import is_free_class_name

from .context import (
    BlockClass,
    CompositeClass,
    ConfigClass,
    DefaultConfig,
    ModelClass,
    ModuleContext,
    XTransformerClass,
    config_call,
    defined_name,
    nested_config,
)
from .render import environment

Overrides = tuple[tuple[str, str], ...]  # (field, repr) of a config's values that differ


def share_classes(module: ModuleContext) -> ModuleContext:
    configs, config_names = share_configs(module.configs)
    classes, class_names = share_bodies(module.classes, config_names)
    plain = concept_names(classes, configs, shared=set(class_names.values()))
    classes = [retarget(cls, {}, plain) for cls in classes]
    return replace(module, configs=configs, classes=tuple(classes))


def share_configs(configs) -> tuple[tuple[ConfigClass, ...], dict[str, tuple[str, Overrides]]]:
    """The configs, each set of fields defined once, and what stands for each dropped one: the
    config class that has its fields, with the values where its own differ. A config comes
    after the ones it nests, so its fields are renamed before it is compared; nested configs
    must agree in full (a field's value cannot be an instance with values of its own)."""
    kept: dict[tuple, ConfigClass] = {}  # (field names, types, comments, nested) -> its class
    result, names = [], {}
    for config in configs:
        fields = tuple(nested_config(f.name, *names[f.type]) if f.type in names else f
                       for f in config.fields)
        config = replace(config, fields=fields)
        nested = {c.name for c in result}
        key = (config.docstring, tuple((f.name, f.type, f.comment, f.value if f.type in nested else "")
                                       for f in fields))
        if key in kept:
            same = kept[key]
            names[config.name] = (same.name, tuple((f.name, f.value) for f, g in zip(fields, same.fields)
                                                   if f.value != g.value))
        else:
            kept[key] = config
            result.append(config)
    return tuple(result), names


def share_bodies(classes, config_names: dict) -> tuple[list, dict[str, str]]:
    """The classes, each body once, and what each dropped class is now called. A class comes
    after the classes it uses, so its uses are renamed before it is compared."""
    kept: dict[str, int] = {}  # blanked body -> index in result
    result, built_from, names = [], [], {}
    for cls in classes:
        cls = retarget(cls, config_names, names)
        body = blanked_body(cls)
        if body in kept:
            index = kept[body]
            names[defined_name(cls)] = defined_name(result[index])
            built_from[index] = list(dict.fromkeys([*built_from[index], cls.config]))
        else:
            kept[body] = len(result)
            result.append(cls)
            built_from.append([cls.config])
    result = [replace(cls, config=" | ".join(configs)) if is_sublayer(cls) else cls
              for cls, configs in zip(result, built_from)]
    return result, names


def concept_names(classes, configs, shared: set[str]) -> dict[str, str]:
    """Shared sublayer and block classes -> the plain name of their concept, where it is free:
    a `FeedForward` built from two stacks' configs is no longer either stack's."""
    taken = {config.name for config in configs} | {defined_name(cls) for cls in classes}
    renames = {}
    for cls in classes:
        name, concept = defined_name(cls), getattr(cls, "concept", "")
        if name in shared and concept and concept not in taken and is_free_class_name(concept):
            renames[name] = concept
            taken.add(concept)
    return renames


def is_sublayer(cls) -> bool:
    """Attention, cross-attention, feedforward and block classes: built from a config that
    the caller passes, with no default of their own."""
    return hasattr(cls, "concept")


def blanked_body(cls) -> str:
    """The code of a class with its name blanked; a sublayer's config blanked, a model's
    default values (the class it is built from stays: it says which fields it reads)."""
    if is_sublayer(cls):
        blank = replace(cls, name="", config="")
    else:
        defaults = {"config_default": "_"} if isinstance(cls, DefaultConfig) else {}
        blank = replace(cls, class_name="", **defaults)
    return environment().get_template(cls.template).render(cls=blank)


def retarget(cls, configs: dict[str, tuple[str, Overrides]], classes: dict[str, str]):
    """The class context with its own name, its config and every class it uses renamed; a
    model built from a config class it shares gets its own values as its default."""
    def config(name: str) -> str:
        return configs[name][0] if name in configs else name

    def default(name: str) -> dict:
        overrides = configs[name][1] if name in configs else ()
        return {"config_default": config_call(config(name), overrides)} if overrides else {}

    def named(name: str) -> str:
        return classes.get(name, name)

    if isinstance(cls, BlockClass):
        steps = tuple(replace(step, branch_type=named(step.branch_type)) for step in cls.steps)
        return replace(cls, name=named(cls.name), config=config(cls.config), steps=steps)
    if isinstance(cls, ModelClass):
        ops = tuple(replace(op, args={**op.args, "block": named(op.args["block"]),
                                      "blocks": tuple((named(name), layer)
                                                      for name, layer in op.args["blocks"])})
                    if op.template == "ops/blocks.py.jinja" else op for op in cls.ops)
        return replace(cls, class_name=named(cls.class_name), config=config(cls.config), ops=ops,
                       **default(cls.config))
    if isinstance(cls, XTransformerClass):
        return replace(cls, class_name=named(cls.class_name), config=config(cls.config),
                       encoder=named(cls.encoder), decoder=named(cls.decoder),
                       **default(cls.config))
    if isinstance(cls, CompositeClass):
        components = tuple((attribute, named(name)) for attribute, name in cls.components)
        return replace(cls, class_name=named(cls.class_name), config=config(cls.config),
                       components=components)
    assert is_sublayer(cls), f"no renaming rule for {type(cls).__name__}"
    return replace(cls, name=named(cls.name), config=config(cls.config))
