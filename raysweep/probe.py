"""Layer-wise linear probes: where in the network does the answer become linearly readable?

For every layer of a chat VLM's language model, the hidden state at the last prompt token (the
position that predicts the answer) is collected for each row; a scikit-learn ``LogisticRegression``
(on standardised features) learns the row's ``label`` from it on part of the rows and is scored on
the rest (a seeded split, stratified by label). Done for the base model and, with an adapter, for
the fine-tuned one; ``raysweep probe`` plots accuracy by layer and logs it to MLflow. No Ray.
"""

from __future__ import annotations

import numpy as np

from raysweep.errors import UserError


def layer_states(family, built, rows: list[dict], batch_size: int = 16):
    """(rows, layers + 1, hidden) float32 hidden states at the last prompt token (index 0: the embeddings)."""
    import torch

    from raysweep.models.base import ChatVLMFamily, to_device

    if not isinstance(family, ChatVLMFamily):
        raise UserError(f"raysweep probe reads a language model's hidden states; {built.family} has none (use a chat VLM family)")
    was_training = built.model.training
    built.model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = to_device(family.collate(built, rows[start : start + batch_size], train=False), built)
                out = built.model(**batch, output_hidden_states=True)
                # left-padded prompts: the last position is every row's last prompt token
                chunks.append(torch.stack([h[:, -1] for h in out.hidden_states], 1).float().cpu().numpy())
    finally:
        built.model.train(was_training)
    return np.concatenate(chunks)


def split_rows(labels: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, score) positions: ``held_out`` of each label scored, the rest fitted; seeded."""
    rng = np.random.default_rng([seed, 31])
    score = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        score.extend(members[: max(1, int(round(len(members) * held_out)))])
    score = np.sort(np.asarray(score, np.int64))
    return np.setdiff1d(np.arange(len(labels)), score), score


def probe_accuracy(states: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray) -> list[float]:
    """Held-out accuracy of a logistic-regression probe of ``labels`` from each layer's states."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = []
    for layer in range(states.shape[1]):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        probe.fit(states[fit, layer], labels[fit])
        out.append(float(probe.score(states[score, layer], labels[score])))
    return out
