"""The pyfunc model that registered adapters are logged as: base model + LoRA adapter + config.

``mlflow.pyfunc.load_model("models:/raysweep-llava-next@champion").predict(rows)`` answers
rows (dicts or a DataFrame with ``image`` bytes and ``prompt``; MLflow validates them against the
type hints of ``predict``) with area names; ``raysweep eval --adapter models:/...`` uses the same
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
    """Predicts the area of each row with the registered adapter (choice mode)."""

    def load_context(self, context):
        from raysweep.config import load_config
        from raysweep.models import get_family

        cfg = load_config(context.artifacts["config"])
        self.family = get_family(cfg.model.family)
        self.built = self.family.load_adapter(self.family.build(cfg.model), context.artifacts["adapter"])
        self.mode = cfg.eval.mode if cfg.eval.mode != "both" else "choice"

    def predict(self, context, model_input: list[SceneQuestion], params=None) -> list[str]:
        rows = [q.model_dump() for q in model_input]
        preds = self.family.predict(self.built, rows, mode=self.mode)
        return [self.built.area_names[p.area] if p.area >= 0 else "unparsed" for p in preds]
