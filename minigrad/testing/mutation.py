"""Mutation gate: realistic bugs, each applied by monkeypatching a public function or method (no file is
edited, so the list survives refactors), must each make the test suite fail with PyTorch unavailable.

    python -m minigrad.testing.mutation            # every mutant; exit 1 if one survives
    python -m minigrad.testing.mutation --list     # names and descriptions
    python -m minigrad.testing.mutation attention_scale_1_over_d crf_transposed_transitions

Each mutant runs in a fresh ``pytest -x`` process that loads this module as a plugin
(``-p minigrad.testing.mutation``): with ``MINIGRAD_MUTANT=<name>`` set it applies the mutant before any test
module is imported, and with ``MINIGRAD_BLOCK_TORCH=1`` it makes ``import torch`` fail, so the PyTorch
oracle tests skip and only minigrad's own references judge. The tests most likely to catch a mutant run first;
the rest of the suite follows, so a survivor has faced every test.
"""
import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field


# ---- how a mutant is applied ----------------------------------------------------------------------------------
def _resolve(path):
    """``"pkg.module:Name.attr"`` -> (owner object, attribute name)."""
    mod, _, attr = path.partition(":")
    owner = importlib.import_module(mod)
    *parents, name = attr.split(".")
    for p in parents:
        owner = getattr(owner, p)
    return owner, name


def _replace_everywhere(original, new):
    """Rebind every module-level (and Tensor-method) reference to ``original``: ``from x import f`` copies too."""
    from minigrad.core import Tensor
    for m in list(sys.modules.values()):
        d = getattr(m, "__dict__", None)
        if not d or not getattr(m, "__name__", "").startswith(("minigrad", "examples")):
            continue
        for k, v in list(d.items()):
            if v is original:
                setattr(m, k, new)
    for k, v in list(vars(Tensor).items()):
        if v is original:
            setattr(Tensor, k, new)


def patch(path, make):
    """Replace the function or method at ``path`` by ``make(original)``."""
    owner, name = _resolve(path)
    original = getattr(owner, name)
    new = make(original)
    setattr(owner, name, new)
    if not isinstance(owner, type):
        _replace_everywhere(original, new)


def scale_backward(factor):
    """``make`` for a Function's backward: every returned gradient multiplied by ``factor``."""
    def make(backward):
        def wrong(self, *gys):
            gs = backward(self, *gys)
            if not isinstance(gs, (tuple, list)):
                return None if gs is None else gs * factor
            return tuple(None if g is None else g * factor for g in gs)
        return wrong
    return make


def with_kwargs(**changes):
    """``make`` that calls the original with some keyword arguments changed (a value or a function of the old)."""
    def make(fn):
        import inspect
        sig = inspect.signature(fn)

        def wrong(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            for k, change in changes.items():
                bound.arguments[k] = change(bound.arguments[k]) if callable(change) else change
            return fn(*bound.args, **bound.kwargs)
        return wrong
    return make


@dataclass
class Mutant:
    name: str
    description: str
    patches: list  # [(path, make)]: the attribute at path becomes make(original)
    tests: list = field(default_factory=list)  # the tests run first (files or node ids)

    def apply(self):
        for path, make in self.patches:
            patch(path, make)


def _m(name, description, tests, *patches):
    return Mutant(name, description, list(patches), tests)


# ---- the bugs -------------------------------------------------------------------------------------------------
def _erf_constant(backward):
    def wrong(self, gy):
        from minigrad.ops.elementwise import exp
        x, = self.saved_tensors
        return gy * 1.128 * exp(-(x * x))
    return wrong


def _softmax_wrong_axis(backward):
    def wrong(self, gy):
        from minigrad.ops.reduction import sum as _sum
        y, = self.saved_tensors
        return y * (gy - _sum(gy * y, 0, keepdims=True))
    return wrong


def _tanh_missing_square(backward):
    def wrong(self, gy):
        y, = self.saved_tensors
        return gy * (1 - y)
    return wrong


def _mul_swapped(backward):
    def wrong(self, gy):
        from minigrad.ops.shape import sum_to
        b, a = self.saved_tensors  # Mul saves b for a's gradient and a for b's
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy * a, self.input_shape(0)) if need_a else None,
                sum_to(gy * b, self.input_shape(1)) if need_b else None)
    return wrong


def _ties_full_gradient(backward):
    def wrong(self, gy):
        from minigrad.core import Tensor
        from minigrad.ops.shape import sum_to
        a, b = self.saved_tensors
        wa = Tensor((a.data >= b.data).astype(gy.dtype))
        wb = Tensor((b.data >= a.data).astype(gy.dtype))
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy * wa, self.input_shape(0)) if need_a else None,
                sum_to(gy * wb, self.input_shape(1)) if need_b else None)
    return wrong


def _layer_norm_sigma_plus_eps(fn):
    def wrong(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        import minigrad as mg
        fn(input, normalized_shape, weight, bias, eps)  # the original's argument checks still apply
        ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        axes = tuple(range(input.ndim - len(ns), input.ndim))
        mu = mg.mean(input, axis=axes, keepdims=True)
        d = input - mu
        sigma = mg.sqrt(mg.mean(d * d, axis=axes, keepdims=True))
        y = d / (sigma + eps)
        if weight is not None:
            y = y * weight
        return y if bias is None else y + bias
    return wrong


def _flip_kernel(fn):
    def wrong(input, weight, *args, **kwargs):
        return fn(input, weight[..., ::-1, ::-1], *args, **kwargs)
    return wrong


def _flip_kernel_1d(fn):
    def wrong(input, weight, *args, **kwargs):
        return fn(input, weight[..., ::-1], *args, **kwargs)
    return wrong


def _transposed(position):
    """``make`` that transposes the positional argument ``position`` (the CRF transition matrix)."""
    def make(fn):
        def wrong(*args, **kwargs):
            args = list(args)
            args[position] = args[position].T
            return fn(*args, **kwargs)
        return wrong
    return make


def _inverted_mask(fn):
    def wrong(q, k, v, mask=None, *args, **kwargs):
        if mask is not None:
            mask = ~(mask.data if hasattr(mask, "data") else mask)
        return fn(q, k, v, mask, *args, **kwargs)
    return wrong


def _key_padding_mask_inverted(forward):
    def wrong(self, query, key, value, key_padding_mask=None, *args, **kwargs):
        if key_padding_mask is not None:
            key_padding_mask = ~(key_padding_mask.data if hasattr(key_padding_mask, "data") else key_padding_mask)
        return forward(self, query, key, value, key_padding_mask, *args, **kwargs)
    return wrong


def _causal_excludes_diagonal(fn):
    def wrong(q, k, v, mask=None, dropout_p=0.0, causal=False, *args, **kwargs):
        if causal:
            import numpy as np
            tri = np.tri(q.shape[-2], k.shape[-2], -1, dtype=bool)
            tri[:, 0] = True  # keep every row attending somewhere
            tri = q.xp.asarray(tri)
            m = mask.data if hasattr(mask, "data") else mask
            mask, causal = (tri if m is None else m & tri), False
        return fn(q, k, v, mask, dropout_p, causal, *args, **kwargs)
    return wrong


def _gaussian_kl_drops_mu(fn):
    def wrong(mu, logvar):
        return fn(mu * 0.0, logvar)
    return wrong


def _reparam_full_variance(fn):
    def wrong(mu, logvar, eps=None, *args):
        return fn(mu, logvar * 2.0, eps, *args) if args or eps is not None else fn(mu, logvar * 2.0)
    return wrong


def _reparam_composed_full_variance(fn):
    def wrong(mu, logvar, eps):
        return fn(mu, logvar * 2.0, eps)
    return wrong


def _cluster_kl_drops_logvar(fn):
    def wrong(z, logvar, class_means, logits):
        return fn(z, logvar * 0.0, class_means, logits)
    return wrong


def _lstm_forget_gate_swapped(fn):
    def wrong(gi, h, c, w_hh_t, b_hh=None):
        H = h.shape[-1]
        import minigrad as mg
        gi = mg.concatenate([gi[:, H:2 * H], gi[:, :H], gi[:, 2 * H:]], axis=1)
        return fn(gi, h, c, w_hh_t, b_hh)
    return wrong


def _gru_update_gate_inverted(fn):
    def wrong(gi, h, w_hh_t, b_hh=None):
        H = h.shape[-1]
        import minigrad as mg
        gi = mg.concatenate([gi[:, :H], -gi[:, H:2 * H], gi[:, 2 * H:]], axis=1)
        w = mg.concatenate([w_hh_t[:, :H], -w_hh_t[:, H:2 * H], w_hh_t[:, 2 * H:]], axis=1)
        b = None if b_hh is None else mg.concatenate([b_hh[:H], -b_hh[H:2 * H], b_hh[2 * H:]])
        return fn(gi, h, w, b)
    return wrong


def _dropout_no_rescale(forward):
    def wrong(self, x):
        y = forward(self, x)
        return y * (1 - self.p) if self.training and self.p > 0 else y
    return wrong


def _embedding_off_by_one(forward):
    def wrong(self, idx):
        import numpy as np
        data = idx.data if hasattr(idx, "data") else np.asarray(idx)
        return forward(self, (data + 1) % self.weight.shape[0])
    return wrong


def _routing_squash_constant(fn):
    def wrong(u_hat, iterations=3, variant="sabour", squash_c=1.0, eps=1e-12, detach=False):
        return fn(u_hat, iterations, variant, squash_c * 2.0 if variant == "sabour" else squash_c, eps, detach)
    return wrong


def _cascade_sign(fn):
    def wrong(v, weights, *args, **kwargs):
        return fn(-v, weights, *args, **kwargs)
    return wrong


def _contrastive_labels_inverted(fn):
    def wrong(x1, x2, same, *args, **kwargs):
        import numpy as np
        s = same.data if hasattr(same, "data") else np.asarray(same)
        return fn(x1, x2, 1 - s.astype(np.int64), *args, **kwargs)
    return wrong


def _bn_biased_running_var(fn):
    def wrong(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        before = None if running_var is None else running_var.data.copy()
        y = fn(input, running_mean, running_var, weight, bias, training, momentum, eps)
        if training and before is not None:
            n = input.size // input.shape[1]
            if n > 1:
                new = running_var.data - (1 - momentum) * before
                running_var.data[...] = (1 - momentum) * before + new * (n - 1) / n
        return y
    return wrong


def _avg_pool_exclude_pad(fn):
    def wrong(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *args, **kw):
        return fn(input, kernel_size, stride, padding, ceil_mode, not count_include_pad, *args, **kw)
    return wrong


def _max_pool_leaks_average(fn):
    def wrong(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        from minigrad.ops.pooling import avg_pool2d
        out = fn(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        if return_indices or padding or dilation != 1 or ceil_mode:
            return out
        return out * 0.9 + avg_pool2d(input, kernel_size, stride) * 0.1
    return wrong


def _adversarial_hinge_margin(fn):
    def wrong(real_scores, fake_scores, kind="non_saturating"):
        return fn(real_scores * 1.1, fake_scores, kind)
    return wrong


def _gen_loss_saturating(fn):
    def wrong(fake_scores, kind="non_saturating"):
        return fn(fake_scores, "minimax" if kind == "non_saturating" else kind)
    return wrong


def _gp_center_zero(fn):
    def wrong(discriminator, real, fake, alpha=None, center=1.0, eps=1e-12):
        return fn(discriminator, real, fake, alpha, center * 0.9, eps)
    return wrong


# ---- forward mode: bugs in jvp rules ----------------------------------------------------------------------
def scale_jvp(factor):
    """``make`` for a Function's jvp: every returned tangent multiplied by ``factor``."""
    def make(jvp):
        def wrong(self, *tangents):
            ts = jvp(self, *tangents)
            if not isinstance(ts, (tuple, list)):
                return None if ts is None else ts * factor
            return tuple(None if t is None else t * factor for t in ts)
        return wrong
    return make


def _tanh_jvp_missing_square(jvp):
    def wrong(self, tx):
        return tx * (1 - self.output())
    return wrong


def _softmax_jvp_wrong_axis(jvp):
    def wrong(self, tx):
        from minigrad.ops.reduction import sum as _sum
        y = self.output()
        return y * (tx - _sum(tx * y, 0, keepdims=True))
    return wrong


def _mul_jvp_one_term(jvp):
    def wrong(self, ta, tb):
        a, b = self.inputs
        return ta * b if ta is not None else a * tb
    return wrong


REF, SPECS = "tests/test_references.py::test_", "tests/ops/test_specs.py::"
JVP, FUNC = SPECS + "test_jvp", "tests/test_func.py::test_"

MUTANTS = [
    # primitives
    _m("erf_constant_1_128", "Erf.backward uses 1.128 instead of 2/√π (3.4e-4 relative)",
       [SPECS + "test_grad[gelu-cpu]"],
       ("minigrad.ops.elementwise:Erf.backward", _erf_constant)),
    _m("sigmoid_grad_1e-4", "Sigmoid.backward scaled by (1 + 1e-4)", [SPECS + "test_grad[sigmoid-cpu]"],
       ("minigrad.ops.elementwise:Sigmoid.backward", scale_backward(1 + 1e-4))),
    _m("exp_grad_1e-4", "Exp.backward scaled by (1 + 1e-4)", [SPECS + "test_grad[exp-cpu]"],
       ("minigrad.ops.elementwise:Exp.backward", scale_backward(1 + 1e-4))),
    _m("matmul_grad_1e-4", "MatMul.backward scaled by (1 + 1e-4)", [SPECS + "test_grad[matmul-cpu]"],
       ("minigrad.ops.linalg:MatMul.backward", scale_backward(1 + 1e-4))),
    _m("logsumexp_grad_1e-4", "LogSumExp.backward scaled by (1 + 1e-4)", [SPECS + "test_grad[logsumexp-cpu]"],
       ("minigrad.ops.reduction:LogSumExp.backward", scale_backward(1 + 1e-4))),
    _m("tanh_grad_missing_square", "Tanh.backward uses 1 − y instead of 1 − y²", [SPECS + "test_grad[tanh-cpu]"],
       ("minigrad.ops.elementwise:Tanh.backward", _tanh_missing_square)),
    _m("softmax_grad_wrong_axis", "Softmax.backward sums over axis 0 instead of the softmax axis",
       [SPECS + "test_grad[softmax-cpu]"], ("minigrad.ops.reduction:Softmax.backward", _softmax_wrong_axis)),
    _m("mul_grad_swapped", "Mul.backward returns gy·a for a and gy·b for b", [SPECS + "test_grad[mul-cpu]"],
       ("minigrad.ops.arithmetic:Mul.backward", _mul_swapped)),
    _m("maximum_ties_full_gradient", "maximum/minimum give the whole gradient to both operands at a tie",
       [SPECS + "test_maximum_minimum_split_ties_evenly", SPECS + "test_grad"],
       ("minigrad.ops.elementwise:Maximum.backward", _ties_full_gradient)),
    _m("label_smoothing_off_10pct", "cross_entropy smooths by 1.1 × label_smoothing",
       [SPECS + "test_forward[cross_entropy-cpu]"],
       ("minigrad.ops.loss:cross_entropy", with_kwargs(label_smoothing=lambda s: s * 1.1))),
    _m("gelu_tanh_constant", "gelu(approximate='tanh') loses its 0.044715 cubic term",
       [SPECS + "test_forward[gelu_tanh-cpu]"],
       ("minigrad.ops.elementwise:gelu", with_kwargs(approximate=lambda a: "none" if a == "tanh" else a))),
    # layers
    _m("layer_norm_sigma_plus_eps", "layer_norm computes (x − μ)/(σ + eps) instead of (x − μ)/√(σ² + eps)",
       [REF + "layer_norm_equals_its_definition"],
       ("minigrad.ops.norm:layer_norm", _layer_norm_sigma_plus_eps)),
    _m("batch_norm_biased_running_var", "batch_norm's running variance moves towards the biased variance",
       [REF + "batch_norm_equals_its_definition"],
       ("minigrad.ops.norm:batch_norm", _bn_biased_running_var)),
    _m("conv2d_flipped_kernel", "conv2d flips the kernel (true convolution instead of cross-correlation)",
       [REF + "conv2d_equals_its_definition"], ("minigrad.ops.conv:conv2d", _flip_kernel)),
    _m("conv1d_flipped_kernel", "conv1d flips the kernel", [REF + "conv1d_equals_its_definition"],
       ("minigrad.ops.conv:conv1d", _flip_kernel_1d)),
    _m("conv_transpose2d_flipped_kernel", "conv_transpose2d flips the kernel",
       [REF + "conv_transpose2d_equals_its_definition"], ("minigrad.ops.conv:conv_transpose2d", _flip_kernel)),
    _m("conv2d_grad_1e-4", "Conv2d.backward scaled by (1 + 1e-4)", [REF + "conv2d_equals_its_definition"],
       ("minigrad.ops.conv:Conv2d.backward", scale_backward(1 + 1e-4))),
    _m("avg_pool_count_include_pad_inverted", "avg_pool2d inverts count_include_pad",
       [REF + "avg_pool2d_equals_its_definition"], ("minigrad.ops.pooling:avg_pool2d", _avg_pool_exclude_pad)),
    _m("max_pool_leaks_average", "max_pool2d mixes 10 % of the window average into the max",
       [REF + "max_pool2d_equals_its_definition"], ("minigrad.ops.pooling:max_pool2d", _max_pool_leaks_average)),
    _m("embedding_off_by_one", "Embedding looks up row i + 1", [REF + "embedding_equals_its_definition"],
       ("minigrad.nn.embedding:Embedding.forward", _embedding_off_by_one)),
    _m("dropout_no_rescale", "Dropout does not rescale the kept units by 1/(1 − p)",
       [REF + "dropout_keeps_each_unit_with_1_minus_p_and_rescales"],
       ("minigrad.nn.dropout:Dropout.forward", _dropout_no_rescale)),
    _m("gru_update_gate_inverted", "the GRU step uses 1 − z where it should use z (fused and composed)",
       [REF + "gru_cell_equals_its_definition"],
       ("minigrad.nn.rnn:gru_step", _gru_update_gate_inverted),
       ("minigrad.nn.rnn:gru_step_composed", _gru_update_gate_inverted)),
    _m("lstm_gates_swapped", "the LSTM step swaps the input and forget gates (fused and composed)",
       [REF + "lstm_cell_equals_its_definition"],
       ("minigrad.nn.rnn:lstm_step", _lstm_forget_gate_swapped),
       ("minigrad.nn.rnn:lstm_step_composed", _lstm_forget_gate_swapped)),
    _m("gru_step_grad_1e-4", "GRUStep.backward scaled by (1 + 1e-4)",
       [REF + "gru_cell_equals_its_definition", "tests/nn/test_rnn.py"],
       ("minigrad.nn.rnn:GRUStep.backward", scale_backward(1 + 1e-4))),
    # attention
    _m("attention_scale_1_over_d", "attention scales scores by 1/d instead of 1/√d (fused and composed)",
       [REF + "attention_equals_its_definition", REF + "multi_head_attention_equals_its_definition"],
       ("minigrad.models.attention:scaled_dot_product_attention", lambda fn: lambda q, k, v, *a, **kw: fn(
           q, k, v, *a, **{**kw, "scale": kw.get("scale") or 1.0 / q.shape[-1]})),
       ("minigrad.models.attention:attention_composed", lambda fn: lambda q, k, v, *a, **kw: fn(
           q, k, v, *a, **{**kw, "scale": kw.get("scale") or 1.0 / q.shape[-1]}))),
    _m("attention_mask_inverted", "the attention mask is inverted (fused and composed)",
       [REF + "attention_equals_its_definition", REF + "multi_head_attention_equals_its_definition"],
       ("minigrad.models.attention:scaled_dot_product_attention", _inverted_mask),
       ("minigrad.models.attention:attention_composed", _inverted_mask)),
    _m("mha_key_padding_mask_inverted", "MultiHeadAttention inverts key_padding_mask (True = attend)",
       [REF + "multi_head_attention_equals_its_definition"],
       ("minigrad.models.attention:MultiHeadAttention.forward", _key_padding_mask_inverted)),
    _m("attention_causal_excludes_diagonal", "causal attention hides the diagonal too (fused and composed)",
       [REF + "attention_equals_its_definition"],
       ("minigrad.models.attention:scaled_dot_product_attention", _causal_excludes_diagonal),
       ("minigrad.models.attention:attention_composed", _causal_excludes_diagonal)),
    _m("attention_grad_1e-4", "ScaledDotProductAttention.backward scaled by (1 + 1e-4)",
       [REF + "attention_equals_its_definition", "tests/models/test_attention.py"],
       ("minigrad.models.attention:ScaledDotProductAttention.backward", scale_backward(1 + 1e-4))),
    # CRF
    _m("crf_transposed_transitions", "the CRF uses g[j, i] for the transition i → j (log Z, path score, Viterbi)",
       [REF + "crf_log_partition_path_score_and_viterbi_equal_enumeration"],
       ("minigrad.models.crf:crf_log_partition", _transposed(1)),
       ("minigrad.models.crf:crf_log_partition_composed", _transposed(1)),
       ("minigrad.models.crf:crf_path_score", _transposed(2)), ("minigrad.models.crf:viterbi_decode", _transposed(1))),
    _m("crf_log_partition_grad_1e-4", "LogPartition.backward scaled by (1 + 1e-4)",
       [REF + "crf_log_partition_path_score_and_viterbi_equal_enumeration"],
       ("minigrad.models.crf:LogPartition.backward", scale_backward(1 + 1e-4))),
    # capsules
    _m("squash_constant", "squash uses c = 2 instead of the requested constant (fused and composed)",
       [REF + "squash_equals_its_definition"],
       ("minigrad.models.capsule:squash", with_kwargs(c=lambda c: c * 2.0)),
       ("minigrad.models.capsule:squash_composed", with_kwargs(c=lambda c: c * 2.0))),
    _m("routing_squash_constant", "dynamic routing squashes with twice the constant (fused and composed)",
       [REF + "routing_equals_its_definition"],
       ("minigrad.models.capsule:dynamic_routing", _routing_squash_constant),
       ("minigrad.models.capsule:dynamic_routing_composed", _routing_squash_constant)),
    _m("routing_grad_1e-4", "DynamicRouting.backward scaled by (1 + 1e-4)",
       [REF + "routing_equals_its_definition", "tests/models/test_capsule.py"],
       ("minigrad.models.capsule:DynamicRouting.backward", scale_backward(1 + 1e-4))),
    # margin losses
    _m("am_softmax_margin_sign", "AM-softmax adds the margin instead of subtracting it",
       [REF + "margin_softmax_losses_equal_their_definition"],
       ("minigrad.models.margin:am_softmax_loss", with_kwargs(m=lambda m: -m))),
    _m("arcface_margin_10pct", "ArcFace's angular margin is 10 % too large",
       [REF + "margin_softmax_losses_equal_their_definition"],
       ("minigrad.models.margin:arcface_loss", with_kwargs(m=lambda m: m * 1.1))),
    _m("triplet_margin_sign", "the triplet hinge uses −margin",
       [REF + "triplet_and_contrastive_losses_equal_their_definition"],
       ("minigrad.models.margin:triplet_loss", with_kwargs(margin=lambda m: -m))),
    _m("contrastive_labels_inverted", "contrastive loss treats same pairs as different",
       [REF + "triplet_and_contrastive_losses_equal_their_definition"],
       ("minigrad.models.margin:contrastive_loss", _contrastive_labels_inverted)),
    # VAE
    _m("gaussian_kl_drops_mu_term", "the Gaussian KL drops its μ² term (fused and composed)",
       [REF + "vae_terms_equal_their_definition"],
       ("minigrad.models.vae:gaussian_kl", _gaussian_kl_drops_mu),
       ("minigrad.models.vae:gaussian_kl_composed", _gaussian_kl_drops_mu)),
    _m("reparameterize_variance_not_std", "reparameterize multiplies ε by exp(logvar) instead of exp(logvar/2)",
       [REF + "vae_terms_equal_their_definition"],
       ("minigrad.models.vae:reparameterize", _reparam_full_variance),
       ("minigrad.models.vae:reparameterize_composed", _reparam_composed_full_variance)),
    _m("cluster_kl_drops_entropy", "the clustering KL drops the −½Σ logvar term (fused and composed)",
       [REF + "vae_terms_equal_their_definition"],
       ("minigrad.models.vae:cluster_kl_terms", _cluster_kl_drops_logvar),
       ("minigrad.models.vae:cluster_kl_terms_composed", _cluster_kl_drops_logvar)),
    # GANs
    _m("discriminator_real_scores_scaled", "the discriminator loss scales real scores by 1.1",
       [REF + "adversarial_losses_equal_their_definition"],
       ("minigrad.models.gan:discriminator_loss", _adversarial_hinge_margin)),
    _m("generator_loss_saturating", "the non-saturating generator loss is the saturating (minimax) one",
       [REF + "adversarial_losses_equal_their_definition"],
       ("minigrad.models.gan:generator_loss", _gen_loss_saturating)),
    _m("wgan_gp_center_0_9", "the WGAN-GP penalty pulls the gradient norm towards 0.9", ["tests/models/test_gan.py"],
       ("minigrad.models.gan:wgan_gp_penalty", _gp_center_zero)),
    _m("cascading_rejection_sign", "cascading rejection projects −v (fused and composed)",
       [REF + "cascading_rejection_equals_its_definition"],
       ("minigrad.models.gan:cascading_rejection", _cascade_sign),
       ("minigrad.models.gan:cascading_rejection_composed", _cascade_sign)),
    _m("adversarial_loss_grad_1e-4", "AdversarialLoss.backward scaled by (1 + 1e-4)",
       [REF + "adversarial_losses_equal_their_definition"],
       ("minigrad.models.gan:AdversarialLoss.backward", scale_backward(1 + 1e-4))),
    # forward mode: jvp rules
    _m("exp_jvp_1e-4", "Exp.jvp scaled by (1 + 1e-4)", [JVP + "[exp-cpu]"],
       ("minigrad.ops.elementwise:Exp.jvp", scale_jvp(1 + 1e-4))),
    _m("matmul_jvp_1e-4", "MatMul.jvp scaled by (1 + 1e-4)", [JVP + "[matmul-cpu]"],
       ("minigrad.ops.linalg:MatMul.jvp", scale_jvp(1 + 1e-4))),
    _m("logsumexp_jvp_1e-4", "LogSumExp.jvp scaled by (1 + 1e-4)", [JVP + "[logsumexp-cpu]"],
       ("minigrad.ops.reduction:LogSumExp.jvp", scale_jvp(1 + 1e-4))),
    _m("tanh_jvp_missing_square", "Tanh.jvp uses 1 − y instead of 1 − y²", [JVP + "[tanh-cpu]"],
       ("minigrad.ops.elementwise:Tanh.jvp", _tanh_jvp_missing_square)),
    _m("softmax_jvp_wrong_axis", "Softmax.jvp sums over axis 0 instead of the softmax axis",
       [JVP + "[softmax-cpu]"], ("minigrad.ops.reduction:Softmax.jvp", _softmax_jvp_wrong_axis)),
    _m("mul_jvp_one_term", "Mul.jvp keeps only one of its two product-rule terms", [JVP + "[mul-cpu]"],
       ("minigrad.ops.arithmetic:Mul.jvp", _mul_jvp_one_term)),
    _m("sumto_jvp_1e-4", "SumTo.jvp scaled by (1 + 1e-4) (seen only by forward over reverse)",
       [JVP + "[mul-cpu]", JVP],
       ("minigrad.ops.shape:SumTo.jvp", scale_jvp(1 + 1e-4))),
    _m("conv2d_jvp_1e-4", "Conv2d.jvp scaled by (1 + 1e-4)", [FUNC + "conv2d_jvp"],
       ("minigrad.ops.conv:Conv2d.jvp", scale_jvp(1 + 1e-4))),
    _m("attention_jvp_1e-4", "ScaledDotProductAttention.jvp scaled by (1 + 1e-4)",
       [FUNC + "fused_jvps_match_their_composed_versions"],
       ("minigrad.models.attention:ScaledDotProductAttention.jvp", scale_jvp(1 + 1e-4))),
    _m("crf_log_partition_jvp_1e-4", "LogPartition.jvp scaled by (1 + 1e-4)",
       [FUNC + "fused_jvps_match_their_composed_versions"],
       ("minigrad.models.crf:LogPartition.jvp", scale_jvp(1 + 1e-4))),
]
MUTANTS = {m.name: m for m in MUTANTS}


# ---- the pytest plugin ----------------------------------------------------------------------------------------
class _NoTorch:
    """A meta-path finder that makes ``import torch`` (and packages built on it) fail as if not installed."""
    blocked = ("torch", "torchvision", "torchcrf", "functorch")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the mutation gate runs without PyTorch)")
        return None


if os.environ.get("MINIGRAD_BLOCK_TORCH") == "1" and not any(isinstance(f, _NoTorch) for f in sys.meta_path):
    sys.meta_path.insert(0, _NoTorch())


def pytest_configure(config):
    name = os.environ.get("MINIGRAD_MUTANT")
    if name:
        MUTANTS[name].apply()
        config.stash_mutant = name


def pytest_report_header(config):
    name = os.environ.get("MINIGRAD_MUTANT")
    return f"mutation gate: mutant {name!r} applied" if name else None


# ---- the runner -----------------------------------------------------------------------------------------------
def _pytest(mutant, tests, timeout, workers=0):
    env = dict(os.environ, MINIGRAD_BLOCK_TORCH="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("MINIGRAD_MUTANT", None)
    if mutant:
        env["MINIGRAD_MUTANT"] = mutant
    parallel = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "minigrad.testing.mutation", "-p", "no:cacheprovider",
           *parallel, "--no-header", *tests]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: a timeout ends the xdist workers too
    try:
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        code, out = -1, f"timed out after {timeout} s"
    return code, out, time.perf_counter() - t0


def run_mutant(m, suite="tests", timeout=900, workers=2):
    """(pytest exit code, output, seconds): the mutant's own tests first (serial, stop at the first failure);
    only if they all pass, the whole suite (``workers`` processes, stop at the first failure)."""
    code, out, dt = _pytest(m.name, m.tests, timeout)
    if code in (0, 5):  # passed, or selected nothing: let the whole suite judge
        code, out, dt2 = _pytest(m.name, [suite], timeout, workers)
        dt += dt2
    return code, out, dt


def _first_failure(out):
    for line in out.splitlines():
        if line.startswith("FAILED "):
            return line[7:].split(" - ")[0]
    return None


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m minigrad.testing.mutation", description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--suite", default="tests", help="the test suite that follows each mutant's own tests")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mutant")
    ap.add_argument("--workers", type=int, default=2, help="pytest-xdist processes for whole-suite runs")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run without a mutant")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.list:
        for m in MUTANTS.values():
            print(f"{m.name:40s} {m.description}")
        return 0
    names = args.names or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        ap.error(f"unknown mutants {unknown}; --list shows them")
    t_start, baseline, load = time.perf_counter(), None, [round(os.getloadavg()[0], 1)]
    if not args.no_baseline:
        code, out, dt = _pytest(None, [args.suite], args.timeout, args.workers)
        print(f"baseline  {dt:6.1f} s  the suite without a mutant (PyTorch blocked): "
              f"{'passed' if code == 0 else f'FAILED (pytest exit {code})'}", flush=True)
        baseline = round(dt, 1)
        if code != 0:
            print(out[-5000:])
            print("mutation gate: the suite must pass without a mutant before mutants can be judged")
            return 2
    results = []
    for name in names:
        m = MUTANTS[name]
        code, out, dt = run_mutant(m, args.suite, args.timeout, args.workers)
        caught = code == 1  # tests failed; 2–5 are usage or collection errors, not a catch
        where = _first_failure(out) if caught else None
        results.append(dict(name=name, description=m.description, caught=caught, exit=code, seconds=round(dt, 1),
                            caught_by=where))
        status = "caught" if caught else ("SURVIVED" if code == 0 else f"ERROR (pytest exit {code})")
        print(f"{status:9s} {dt:6.1f} s  {name}: {m.description}" + (f"\n{'':19s}by {where}" if where else ""),
              flush=True)
        if not caught and code != 0:
            print(out[-3000:])
    total = time.perf_counter() - t_start
    score = sum(r["caught"] for r in results)
    print(f"mutation gate: {score}/{len(results)} mutants caught in {total:.0f} s (PyTorch blocked)")
    if args.json:
        with open(args.json, "w") as f:
            load.append(round(os.getloadavg()[0], 1))
            json.dump(dict(caught=score, total=len(results), seconds=round(total, 1), baseline_seconds=baseline,
                           workers=args.workers, cpus=os.cpu_count(), load_average=load, results=results), f, indent=1)
    return 0 if score == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
