"""The mutation gate's machinery: enough mutants across the code base, every patch target exists, a mutant
really changes behaviour once applied, and the PyTorch blocker makes ``import torch`` fail."""
import os
import subprocess
import sys

import pytest

from minigrad.testing import mutation


def test_at_least_30_mutants_across_primitives_and_every_model():
    assert len(mutation.MUTANTS) >= 30
    targets = {path.split(":")[0] for m in mutation.MUTANTS.values() for path, _ in m.patches}
    for module in ("minigrad.ops.elementwise", "minigrad.ops.conv", "minigrad.ops.norm", "minigrad.nn.rnn",
                   "minigrad.models.attention", "minigrad.models.crf", "minigrad.models.capsule",
                   "minigrad.models.margin", "minigrad.models.vae", "minigrad.models.gan"):
        assert module in targets, f"no mutant in {module}"


@pytest.mark.parametrize("name", list(mutation.MUTANTS))
def test_every_patch_target_exists_and_every_first_test_file_exists(name):
    m = mutation.MUTANTS[name]
    for path, make in m.patches:
        owner, attr = mutation._resolve(path)
        assert callable(getattr(owner, attr)) and callable(make)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for t in m.tests:
        assert os.path.exists(os.path.join(root, t.split("::")[0])), t


def test_an_applied_mutant_changes_the_result():
    code = ("import os; os.environ['MINIGRAD_MUTANT'] = 'attention_scale_1_over_d'\n"
            "import numpy as np, minigrad as mg\n"
            "from minigrad.testing import mutation\n"
            "from minigrad.models import attention as A\n"
            "q = mg.tensor(np.random.default_rng(0).standard_normal((1, 2, 4)))\n"
            "before = A.scaled_dot_product_attention(q, q, q).numpy()\n"
            "mutation.MUTANTS['attention_scale_1_over_d'].apply()\n"
            "after = A.scaled_dot_product_attention(q, q, q).numpy()\n"
            "print(np.abs(before - after).max() > 1e-3)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_root())
    assert r.stdout.strip() == "True", r.stderr


def test_the_torch_blocker_makes_import_torch_fail():
    code = "import minigrad.testing.mutation\ntry:\n import torch\nexcept ImportError as e:\n print('blocked', e)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_root(),
                       env=dict(os.environ, MINIGRAD_BLOCK_TORCH="1"))
    assert r.stdout.startswith("blocked"), r.stdout + r.stderr


def _root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
