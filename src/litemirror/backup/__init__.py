"""Backups of a mirror's databases: the backup set format (pure) shared by taking,
listing and restoring.

A backup set is a directory ``<root>/<mirror>/<YYYYmmddTHHMMSSZ>-<member>-lsn<N>/``
holding ``manifest.json`` and one ``<db>.db.zst`` per database. It is written under
``.partial-<same name>`` and renamed into place only once complete, so a directory
whose name starts with ``.`` or that has no ``manifest.json`` is not a backup.
"""
