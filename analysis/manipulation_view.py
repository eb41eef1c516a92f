"""Only for ``analysis/serializers.py``, which imports the recipe rule from here and is being rewritten
elsewhere: the rule lives in :mod:`analysis.recipes`, the Manipulation page's presenter in
``analysis.workspace.manipulation_presenter``. Delete this module once the serializer imports from
``analysis.recipes``."""

from .recipes import RecipeError, clean_name, clean_recipe

__all__ = ["RecipeError", "clean_name", "clean_recipe"]
