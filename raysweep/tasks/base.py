"""What every task is: a question template, an answer vocabulary, a parser and its metrics.

A task is data plus a few functions (lm-evaluation-harness style): its answer names (the classes,
in label order), the synonyms its lenient parser accepts, the question template and its
placeholders, how a scene or a COCO annotation yields a question and its answer (the task's own
module), and the bias index it defines. Every consumer - models, metrics, parsing, datasets, the
sweep summary, the registry model, ``analysis/`` - reads the answer space from the task of the data
it is given (:func:`raysweep.tasks.task_for`, :func:`raysweep.tasks.task_of_manifest`), never from a
module constant. A row's ``label`` is the index of its ``answer`` in :attr:`Task.answer_names`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from raysweep.parsing import parse_phrase


def slug(name: str) -> str:
    """A class name as it appears in metric keys: ``top left`` -> ``top_left``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class Task:
    """One question type with a fixed answer vocabulary (subclasses register by ``name``)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    template: ClassVar[str] = ""  # the default question template (data.template overrides it)
    placeholders: ClassVar[tuple[str, ...]] = ()  # the fields a template must contain
    answer_names: tuple[str, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    # -- the answer space --------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.answer_names)

    @property
    def slugs(self) -> list[str]:
        """Class names as used in metric keys (``val/acc/<slug>``, ``test/<set>/acc/<slug>``)."""
        return [slug(n) for n in self.answer_names]

    def label_of(self, answer: str) -> int:
        """Index of ``answer`` in the vocabulary; ValueError for a name outside it."""
        try:
            return self.answer_names.index(answer)
        except ValueError:
            raise ValueError(f"{answer!r} is not an answer of task {self.name} ({', '.join(self.answer_names)})") from None

    def grid_side(self) -> int | None:
        """Side of the square the classes form (heatmaps), or None when they are no grid."""
        return None

    def parse(self, text: str, leniency: str = "lenient") -> int:
        """The label a generated answer names, or -1 (unparsed); see :mod:`raysweep.parsing`."""
        return parse_phrase(text, list(self.answer_names), self.synonyms, leniency)

    # -- corruptions (data.label_noise_to, data.answer_format_noise) --------------------------------
    phrases: ClassVar[tuple[str, ...]] = ("it is {name}", "the answer is {name}", "I would say {name}")

    def neighbours(self, label: int) -> list[int]:
        """The classes next to ``label`` (what a 'neighbouring' label noise picks from): the adjacent
        labels in vocabulary order here; tasks with a geometry override it."""
        n = self.n_classes
        return sorted({(label - 1) % n, (label + 1) % n} - {label})

    def free_phrase(self, label: int, variant: int) -> str:
        """A free-form answer naming ``label`` (one of :attr:`phrases`, by ``variant``) that the
        lenient parser reads back as ``label``."""
        return self.phrases[variant % len(self.phrases)].format(name=self.answer_names[label])

    # -- data --------------------------------------------------------------------------------------
    def scenes(self, data_cfg):
        """The synthetic questions of ``data_cfg``: a set with ``len``, positions -> scenes,
        ``question``/``prompt``/``answer``/``label`` of a scene and ``labels()`` of all."""
        raise NotImplementedError(f"task {self.name} has no synthetic scenes")

    def check_data(self, data_cfg) -> tuple[str, str] | None:
        """(key, reason) when a data section cannot make this task's questions, else None."""
        return None

    def build_coco(self, annotations, images_dir, out_dir, opts, overwrite: bool = False, progress: bool = True) -> dict:
        """Write this task's questions on COCO photos (``raysweep coco --task``); returns the manifest."""
        from raysweep.errors import UserError

        raise UserError(f"task {self.name} has no COCO builder")

    def tokenizer_texts(self) -> list[str]:
        """Sample questions the tiny models' tokenizer is trained on besides the default corpus."""
        return []

    # -- metrics -----------------------------------------------------------------------------------
    def bias(self, targets: list[int], preds: list[int]) -> dict[str, float]:
        """The task's own bias index (flat metric keys); none by default."""
        return {}

    def baselines(self, rows: list[dict]) -> dict[str, float]:
        """Accuracies of data-only baselines on ``rows`` (the task's controls), to report next to the model's."""
        return {}

    def bias_classes(self) -> list[str]:
        """Slugs of the classes the bias index is about (reports show their share of answers)."""
        return []

    def bias_note(self) -> str:
        """One sentence on what :meth:`bias` measures (for reports)."""
        return ""

    # -- identity ----------------------------------------------------------------------------------
    def identity(self) -> dict:
        """What an adapter records of the task it was trained on (compared when it is loaded)."""
        return {"name": self.name, "answer_names": list(self.answer_names)}

    def check_template(self, template: str) -> str | None:
        """A reason ``template`` cannot ask this task's question, or None."""
        missing = [p for p in self.placeholders if "{" + p + "}" not in template]
        return f"must contain {{{missing[0]}}} for task {self.name}" if missing else None
