"""The training options objects (gencli.training.options) as the library face offers them: one typed
dataclass per family, which the command line is made from and gencli.api's train functions take, and the
reading of --config files. Loads no torch."""

from gencli.training.option_files import read_config  # noqa: F401
from gencli.training.options import (CycleGANTraining, StyleGANTraining, TrainingOptions, VAETraining,  # noqa: F401
                                     field_type, option_name, spelling)
