"""The ``litemirror`` command."""
