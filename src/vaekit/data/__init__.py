"""Reading and validating input. Knows no model.

datasets   Dataset, DataSplits: in-memory tensors and the train/val/test split
loading    load_data(DataConfig): any source, validated and split the same way every time
builtin    digits, fashion-mnist        idx     IDX files
images     image files and folders      arrays  .npy / .npz
tables     CSV / TSV / Parquet files and 2-D matrices, column kinds     schema  TableSchema
examples   what a user hands a trained model (read_examples, load_split)
corruption noise for denoising and the background model
"""

from .corruption import corrupt
from .datasets import Dataset, DataSplits, RawData
from .examples import Examples, load_split, read_examples, split_spec
from .images import load_image
from .loading import load_data
from .schema import TableSchema
from .tables import read_table, write_table

__all__ = [
    "DataSplits",
    "Dataset",
    "RawData",
    "Examples",
    "corrupt",
    "load_data",
    "load_image",
    "load_split",
    "read_examples",
    "split_spec",
    "TableSchema",
    "read_table",
    "write_table",
]
