"""Reading data into float32 arrays and writing arrays out.

``read_data`` turns a spec - a path or a built-in name such as ``"digits[:1500]"`` - into a
:class:`Dataset`; ``open_rows`` opens data too big for memory to be read in chunks; ``write_array``
writes results; ``fetch_idx`` gets MNIST and Fashion-MNIST.

Modules, one concept each: ``dataset`` (the result type and its checks), ``spec`` (spec parsing and
``read_data``), ``readers`` (one reader per file format), ``idx`` (the IDX format), ``images`` (image
folders), ``labels`` (labels files), ``builtins`` (named datasets), ``stream`` (reading and writing
in chunks), ``download`` (the data home and verified downloads), ``writers`` (``write_array``).
"""

from isthmus.data.dataset import Dataset, check_finite
from isthmus.data.download import data_home, fetch_idx
from isthmus.data.labels import read_labels
from isthmus.data.spec import read_data
from isthmus.data.stream import Rows, open_rows, write_npy_chunks
from isthmus.data.writers import write_array

__all__ = [
    "Dataset",
    "Rows",
    "check_finite",
    "data_home",
    "fetch_idx",
    "open_rows",
    "read_data",
    "read_labels",
    "write_array",
    "write_npy_chunks",
]
