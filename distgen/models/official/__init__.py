"""Official checkpoints of the published models, mapped into distgen's modules.

``scdfm`` and ``perturbdiff`` turn the state dict of the official code (AI4Science-WestlakeU/scDFM,
DeepGraphLearning/PerturbDiff) into the state dict of distgen's preset model of the same sizes,
parameter by parameter; ``loading`` reads the official files without executing pickled code.
``distgen import`` (``distgen/commands/import_official.py``) writes the result as a run directory.
"""

from distgen.models.official.common import ImportReport, OfficialCheckpointError
from distgen.models.official.loading import read_official

__all__ = ["ImportReport", "OfficialCheckpointError", "read_official"]
