import hashlib

import pytest

ray = pytest.importorskip("ray")

from raysweep.config import load_config  # noqa: E402
from raysweep.datasets.synthetic import scene_columns  # noqa: E402
from raysweep.scenes import Renderer, SceneSet  # noqa: E402


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def test_ray_data_stream_matches_plain_rendering(local_ray):
    from raysweep.launch.data import scene_dataset

    cfg = load_config(None, ["data.distractors=3", "data.fraction=0.02", "data.combos=[{shapes: [star, circle], colors: [red, blue]}]"]).data
    rows = scene_dataset(cfg, batch_size=16, num_blocks=3).take_all()
    scenes = SceneSet(cfg)
    plain = scene_columns(scenes, Renderer(cfg), range(len(scenes)))
    got = sorted((int(r["scene_id"]), hashlib.sha256(r["image"]).hexdigest(), r["question"]) for r in rows)
    want = sorted(zip(plain["scene_id"], (hashlib.sha256(b).hexdigest() for b in plain["image"]), plain["question"]))
    assert got == want and len(got) == len(scenes)
