"""Amazon-style sequential datasets: item catalog, examples, validated loading, train rebuild.

    from rl4rec.genrec.data import load_dataset
    ds = load_dataset("Industrial_and_Scientific", data_dir="../shared/data")   # R1 rebuild
    ds.catalog.title(ds.test[0].target_item_id)
"""

from rl4rec.genrec.data.catalog import DataFormatError, ItemCatalog, clean_text, parse_description
from rl4rec.genrec.data.dataset import SeqDataset, default_data_dirs, load_dataset, resolve_dataset_dir
from rl4rec.genrec.data.examples import MAX_HISTORY, SeqExample, pad_histories, read_examples, write_examples
from rl4rec.genrec.data.rebuild import TrainRebuild, parse_recipe, rebuild_train

__all__ = [
    "DataFormatError",
    "ItemCatalog",
    "MAX_HISTORY",
    "SeqDataset",
    "SeqExample",
    "TrainRebuild",
    "clean_text",
    "default_data_dirs",
    "load_dataset",
    "pad_histories",
    "parse_description",
    "parse_recipe",
    "read_examples",
    "rebuild_train",
    "resolve_dataset_dir",
    "write_examples",
]
