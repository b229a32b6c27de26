"""compiler/: Spec -> IR graph -> check passes -> render context -> jinja2 -> Python source.

Imports spec/, networkx and jinja2; never torch.
"""
