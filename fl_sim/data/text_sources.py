"""Registered text-classification datasets (Neshaei et al. 2024; ../REFERENCE §2).

Each is tokenized by the scenario's tokenizer into (N, max_length) token ids.

Each loads from local files with ``data.path`` (the layouts of ../shared/data) and from the
Hugging Face Hub by its usual name without it (needs network; ``data.hub_name`` overrides the name):
- ``sst2``: GLUE SST-2, binary sentiment. Local: ``train.tsv`` and ``dev.tsv`` (a header row, then
  ``label<TAB>sentence`` or ``sentence<TAB>label``). The dev split is the test set (GLUE's test has
  no labels). Hub: ``stanfordnlp/sst2`` (train / validation).
- ``emotion``: dair-ai emotion, 6 classes (sadness, joy, love, anger, fear, surprise = 0..5).
  Local: ``train.txt`` and ``test.txt`` of ``text;label_name`` lines. Hub: ``dair-ai/emotion``.
- ``mr``: rt-polarity movie reviews, binary. Local: ``rt-polarity.pos`` / ``.neg`` (UTF-8, or
  the original cp1252), one review a line, split 90/10 by a fixed permutation. Hub:
  ``cornell-movie-review-data/rotten_tomatoes`` (train / test).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import torch

from fl_sim.data.sources import DATASETS
from fl_sim.data.tensors import Dataset, ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.errors import UserError

EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")  # the Hub dataset's label order
Split = tuple[list[str], list[int]]


def _codec(tokenizer: str | None, max_length: int) -> TextCodec:
    if not tokenizer:
        raise UserError("a text dataset needs data.tokenizer (set by a text model's model.pretrained)")
    return TextCodec(tokenizer, max_length)


def _encode(name: str, train: Split, test: Split, num_classes: int, codec: TextCodec) -> Dataset:
    def one(split: Split) -> ExampleSet:
        return ExampleSet(codec.encode(split[0]), torch.tensor(split[1], dtype=torch.int64))

    return Dataset(name, one(train), one(test), num_classes, text=codec)


def _need(folder: Path, *names: str) -> list[Path]:
    paths = [folder / n for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{folder}: missing {', '.join(missing)}")
    return paths


def read_tsv(path: Path) -> Split:
    """Read a TSV file: a header row naming a ``label`` column and a text column (``sentence`` or ``content``)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or "label" not in rows[0]:
        raise UserError(f"{path}: expected a header row with a 'label' column")
    li = rows[0].index("label")
    ti = 1 - li if len(rows[0]) == 2 else rows[0].index("sentence")
    texts, labels = [], []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise UserError(f"{path}:{n}: expected a label and a sentence")
        texts.append(row[ti].strip())
        labels.append(int(row[li]))
    return texts, labels


def read_emotion(path: Path) -> Split:
    """Read ``text;label_name`` lines (a ``text;`` header line, if any, and blank lines skipped).

    The label is the last field's index in ``EMOTION_LABELS``; an unknown name raises UserError.
    """
    texts, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or (n == 1 and line.startswith("text;")):
            continue
        text, _, name = line.rpartition(";")
        if name not in EMOTION_LABELS:
            raise UserError(f"{path}:{n}: unknown emotion {name!r} (known: {', '.join(EMOTION_LABELS)})")
        texts.append(text)
        labels.append(EMOTION_LABELS.index(name))
    return texts, labels


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def read_mr(folder: Path, test_fraction: float = 0.1) -> tuple[Split, Split]:
    """Read ``rt-polarity.pos`` / ``.neg`` (label 1 / 0) and split them into (train, test).

    The test split is the fraction ``test_fraction`` of a fixed permutation (not seeded by the scenario).
    """
    pos_path, neg_path = _need(folder, "rt-polarity.pos", "rt-polarity.neg")
    pos, neg = _read_lines(pos_path), _read_lines(neg_path)
    texts, labels = neg + pos, [0] * len(neg) + [1] * len(pos)
    perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(10662)).tolist()  # fixed, not seeded
    n_test = int(round(len(texts) * test_fraction))
    pick: Callable[[list[int]], Split] = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    return pick(perm[n_test:]), pick(perm[:n_test])


def _hub(hub_name: str, train_split: str, test_split: str, text_key: str) -> tuple[Split, Split]:
    try:
        from datasets import load_dataset

        dd = load_dataset(hub_name)
    except Exception as exc:  # network errors, unknown names: a user-level problem
        raise UserError(f"could not load Hugging Face dataset {hub_name!r}: {str(exc).splitlines()[0]}") from None
    for split in (train_split, test_split):
        if split not in dd:
            raise UserError(f"Hugging Face dataset {hub_name!r} has no {split!r} split (has {list(dd)})")
    # tuple() of a generator has no fixed length for mypy: it cannot see the two splits (return-value).
    return tuple(
        (list(dd[s][text_key]), [int(v) for v in dd[s]["label"]])  # type: ignore[return-value]
        for s in (train_split, test_split)
    )


Files = Callable[[Path], tuple[Split, Split]]


def _source(name: str, num_classes: int, files: Files, hub: tuple[str, str, str, str]) -> Callable[..., Dataset]:
    """Make a dataset source: (train, test) from ``files(folder)`` with ``data.path``, else from the Hub.

    ``hub`` holds the Hub's default name, train split, test split and text column.
    """

    def load(
        path: str | None, hub_name: str | None = None, tokenizer: str | None = None, max_length: int = 64, **_: object
    ) -> Dataset:
        codec = _codec(tokenizer, max_length)
        train, test = files(Path(path)) if path else _hub(hub_name or hub[0], *hub[1:])
        return _encode(name, train, test, num_classes, codec)

    return load


def _sst2_files(folder: Path) -> tuple[Split, Split]:
    train, dev = _need(folder, "train.tsv", "dev.tsv")
    return read_tsv(train), read_tsv(dev)


def _emotion_files(folder: Path) -> tuple[Split, Split]:
    train, test = _need(folder, "train.txt", "test.txt")
    return read_emotion(train), read_emotion(test)


def _mr_files(folder: Path) -> tuple[Split, Split]:
    return read_mr(folder / "utf8" if (folder / "utf8").is_dir() else folder)


sst2_source = DATASETS.register("sst2", "GLUE SST-2 sentiment (2 classes): data.path with train.tsv / dev.tsv, else the Hub")(
    _source("sst2", 2, _sst2_files, ("stanfordnlp/sst2", "train", "validation", "sentence"))
)
emotion_source = DATASETS.register("emotion", "dair-ai emotion (6 classes): data.path with train.txt / test.txt, else the Hub")(
    _source("emotion", len(EMOTION_LABELS), _emotion_files, ("dair-ai/emotion", "train", "test", "text"))
)
mr_source = DATASETS.register("mr", "rt-polarity movie reviews (2 classes): data.path with rt-polarity.pos / .neg, else the Hub")(
    _source("mr", 2, _mr_files, ("cornell-movie-review-data/rotten_tomatoes", "train", "test", "text"))
)

TEXT_SOURCES = frozenset({"sst2", "emotion", "mr"})
