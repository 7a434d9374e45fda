"""What every command does first: load the mirror's config and set up control connections."""

from __future__ import annotations

from litemirror.client.credentials import tls_from, use_tls
from litemirror.config import Config
from litemirror.config import load as load_file


def load(path: str) -> Config:
    """Load the mirror config; control connections follow its [tls] (and LITEMIRROR_TLS_*)."""
    config = load_file(path)
    use_tls(tls_from(config))
    return config
