"""What the ``sat_storage.schema`` entry point names: models and revisions."""

from pathlib import Path

from sat_notes.models import Base

metadata = Base.metadata
version_location = Path(__file__).resolve().parent / "versions"
