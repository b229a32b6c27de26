"""Render context -> Python source through jinja2 templates.

The environment is strict (an undefined name is an error, never an empty string) and
whitespace-disciplined; it is built once. Classes are rendered first and the module header
after them, from the imports the classes reported (betterproto's order).
"""

from __future__ import annotations

from functools import cache

import jinja2

from .context import ModuleContext, call_statement, wrapped_call


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("xtc.compiler", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML: values arrive as validated repr()s
    )
    # calls wrapped as ruff formats them, so that emitted lines fit 100 columns
    env.globals.update(call_statement=call_statement, wrapped_call=wrapped_call)
    return env


def render_module(module: ModuleContext) -> str:
    env = environment()
    bodies = [env.get_template(cls.template).render(cls=cls).rstrip("\n") for cls in module.classes]
    return env.get_template("module.py.jinja").render(module=module, bodies=bodies)
