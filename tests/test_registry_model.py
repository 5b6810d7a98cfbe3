"""A registered adapter answers through MLflow's own loader: ``mlflow.pyfunc.load_model(models:/NAME@ALIAS)``."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from raysweep.config import load_config
from raysweep.models import build_model, get_family
from raysweep.models._rows import synthetic_rows
from raysweep.tracking import ensure_experiment, register_adapter

REPO = Path(__file__).resolve().parents[1]


def test_pyfunc_model_from_the_registry_predicts_like_the_adapter(tmp_path, monkeypatch):
    import mlflow

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the local artifact store lives under the working directory
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config_yaml = (REPO / "configs/models/tiny-llava-next.yaml").read_text()
    cfg = load_config(REPO / "configs/models/tiny-llava-next.yaml")
    family = get_family("llava-next")
    built = build_model(cfg.model, cfg.lora)
    with torch.no_grad():
        for name, param in built.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)  # an adapter that changes the answers
    family.save_adapter(built, tmp_path / "adapter")
    rows = synthetic_rows(12)
    expected = [built.answer_names[p.area] for p in family.predict(built, rows, "choice")]
    base = build_model(cfg.model)
    assert expected != [base.answer_names[p.area] for p in family.predict(base, rows, "choice")]

    mlflow.set_tracking_uri(uri)
    experiment = ensure_experiment(uri, "registry-test")
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    version = register_adapter(uri, run.info.run_id, tmp_path / "adapter", config_yaml, "tiny-llava", "champion", {"rank": 32})
    assert version == 1

    model = mlflow.pyfunc.load_model("models:/tiny-llava@champion")
    questions = [{"image": r["image"], "prompt": r["prompt"]} for r in rows]
    assert list(model.predict(questions)) == expected
    assert list(model.predict(pd.DataFrame(questions))) == expected
    with pytest.raises(Exception, match="prompt"):  # MLflow validates rows against predict's type hints
        model.predict([{"image": rows[0]["image"]}])
