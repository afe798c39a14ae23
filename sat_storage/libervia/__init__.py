"""Adoption of a Libervia 0.9 SQLite database, in place.

At :meth:`sat_storage.Storage.initialise` (and ``sat-storage db upgrade``), a file
stamped with one of Libervia 0.9's revisions (:data:`detect.REVISIONS`) is backed up
next to itself (``NAME.libervia-0.9.bak``), then upgraded in one transaction to this
package's head, every row kept with its ids (:mod:`.upgrade` says what is converted,
:mod:`.values` how pickles become JSON). :mod:`.credentials` decrypts the XMPP
password Libervia stored for a profile, so the host can connect adopted profiles.

Modules: :mod:`.detect` (which database is it), :mod:`.backup`, :mod:`.values`,
:mod:`.upgrade`, :mod:`.adoption` (the start-up entry point), :mod:`.credentials`.
"""

from sat_storage.libervia.adoption import Adoption, adopt, libervia_file
from sat_storage.libervia.errors import (
    AdoptionError,
    BackupError,
    ProfilePasswordError,
    UnknownRevisionError,
)

__all__ = [
    "Adoption",
    "AdoptionError",
    "BackupError",
    "ProfilePasswordError",
    "UnknownRevisionError",
    "adopt",
    "libervia_file",
]
