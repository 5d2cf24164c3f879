"""The data a network is tested on, and the *functions* it carries: subsets of examples and/or
output groups ([spec §5][spec-5]) that masks and knockouts ask about one by one.

`load_data` reads the user's data (arrays, ``.npz`` / ``.pt`` files, IDX folders, a ``Dataset`` or
``DataLoader``) into `Data`: splits read in batches, never whole (`modscope.data.splits`).
"""

from .dataset import Data, load_data
from .functions import Function, class_functions, function_where, parse_function

__all__ = ["Data", "Function", "class_functions", "function_where", "load_data", "parse_function"]
