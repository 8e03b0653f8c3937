"""Each model's public function runs its hand-written Function, not the composed reference."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.models.attention import ScaledDotProductAttention, scaled_dot_product_attention
from minigrad.models.capsule import DynamicRouting, Squash, dynamic_routing, squash
from minigrad.models.crf import LogPartition, crf_log_partition
from minigrad.models.gan import AdversarialLoss, CascadingRejection, cascading_rejection, discriminator_loss
from minigrad.models.margin import (ContrastiveLoss, CosineMarginSoftmax, TripletLoss, am_softmax_loss,
                                    contrastive_loss, triplet_loss)
from minigrad.models.vae import ClusterKL, GaussianKL, Reparameterize, cluster_kl_terms, gaussian_kl, reparameterize


def t(*shape):
    return mg.tensor(np.random.default_rng(sum(shape)).standard_normal(shape), dtype="float64", requires_grad=True)


CASES = [
    (ScaledDotProductAttention, lambda: scaled_dot_product_attention(t(2, 3, 4), t(2, 5, 4), t(2, 5, 4))),
    (Squash, lambda: squash(t(2, 3))),
    (DynamicRouting, lambda: dynamic_routing(t(2, 3, 4, 5))),
    (LogPartition, lambda: crf_log_partition(t(2, 3, 4), t(4, 4))),
    (AdversarialLoss, lambda: discriminator_loss(t(4), t(4))),
    (CascadingRejection, lambda: cascading_rejection(t(3, 4), t(2, 4))),
    (CosineMarginSoftmax, lambda: am_softmax_loss(t(3, 4), t(5, 4), mg.tensor([0, 1, 4]))),
    (TripletLoss, lambda: triplet_loss(t(3, 4), t(3, 5)[:, :4], t(3, 6)[:, :4])),
    (ContrastiveLoss, lambda: contrastive_loss(t(3, 4), t(3, 5)[:, :4], mg.tensor([1, 0, 1]))),
    (Reparameterize, lambda: reparameterize(t(3, 2), t(3, 3)[:, :2], mg.tensor(np.ones((3, 2))))),
    (GaussianKL, lambda: gaussian_kl(t(3, 2), t(3, 3)[:, :2])),
    (ClusterKL, lambda: cluster_kl_terms(t(3, 2), t(3, 3)[:, :2], t(4, 2), t(3, 4))),
]


@pytest.mark.parametrize("cls, make", CASES, ids=[c.__name__ for c, _ in CASES])
def test_public_function_is_the_hand_written_op(cls, make):
    out = make()
    out = out[0] if isinstance(out, (tuple, list)) else out
    seen, stack = set(), [out.creator]
    while stack:  # the op may be followed by a reduction or reshape: search the graph for it
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        if isinstance(f, cls):
            break
        stack.extend(e.node for e in f.edges if isinstance(e.node, mg.Function))
    else:
        pytest.fail(f"{cls.__name__} is not in the graph of its public function")
