"""The pyfunc model that registered adapters are logged as: base model + LoRA adapter + config.

``mlflow.pyfunc.load_model("models:/raysweep-llava-next@champion").predict(rows)`` answers
rows (dicts or a DataFrame with ``image`` bytes and ``prompt``; MLflow validates them against the
type hints of ``predict``) with answer names of the task the adapter was trained on; ``raysweep eval --adapter models:/...`` uses the same
artifacts.
"""

from __future__ import annotations

import mlflow.pyfunc
import pydantic


class SceneQuestion(pydantic.BaseModel):
    """One question: the image (PNG/JPEG bytes) and the full prompt text."""

    image: bytes
    prompt: str


class AdapterModel(mlflow.pyfunc.PythonModel):
    """Answers each row with the registered adapter (its task's answer names; choice mode)."""

    def load_context(self, context):
        from raysweep.config import load_config
        from raysweep.models import get_family
        from raysweep.models._adapter_identity import read_identity
        from raysweep.tasks import task_for, task_from_identity

        cfg = load_config(context.artifacts["config"])
        record = read_identity(context.artifacts["adapter"]) or {}
        task = task_from_identity(record["task"]) if isinstance(record.get("task"), dict) else task_for(cfg.data)
        self.family = get_family(cfg.model.family)
        self.built = self.family.load_adapter(self.family.build(cfg.model, task), context.artifacts["adapter"])
        self.mode = cfg.eval.mode if cfg.eval.mode != "both" else "choice"

    def predict(self, context, model_input: list[SceneQuestion], params=None) -> list[str]:
        rows = [q.model_dump() for q in model_input]
        preds = self.family.predict(self.built, rows, mode=self.mode)
        return [self.built.answer_names[p.area] if p.area >= 0 else "unparsed" for p in preds]
