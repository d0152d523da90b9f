"""What users import: ``veo.errors.VeoError`` and its kinds. Their home is ``veo.core.errors``."""

from veo.core.errors import *  # noqa: F401,F403
