"""Backups of a mirror's databases and restoring them to a point in time.

:mod:`.manifest` is the format of a backup set's ``manifest.json`` (pure);
:mod:`.plan` decides what a restore replays from the journal archive (pure);
:mod:`.archive` reads archived journal segments; :mod:`.restore` is the shell
of ``litemirror restore``.
"""
