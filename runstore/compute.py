"""``pyarrow.compute`` typed as ``Any``, for the column work of summaries over big runs: its functions
(``index_in``, ``cumulative_max``, ...) are generated when it is imported, so a type checker sees none of them."""

from typing import Any

import pyarrow.compute

pc: Any = pyarrow.compute
