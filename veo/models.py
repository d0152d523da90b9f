"""What users import: ``veo.models.ClusterSpec``, ``Service``, ``Instance``, ``Event``… Their home is
``veo.core.models`` (what users write) and ``veo.core.records`` (what the Scheduler reports); this
module keeps the documented import path."""

from veo.core.models import *  # noqa: F401,F403
from veo.core.records import *  # noqa: F401,F403
