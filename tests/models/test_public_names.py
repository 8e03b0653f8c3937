"""The models package installs as minigrad.models: every public name each model module had under the old
top-level ``models`` name is still there (the margin references also under their ``*_composed`` names)."""
import importlib

import pytest

PUBLIC = {
    "attention": "LearnedPositionEmbedding MultiHeadAttention ScaledDotProductAttention SinusoidalPositionEmbedding "
                 "TransformerEncoder TransformerEncoderLayer attention_composed scaled_dot_product_attention "
                 "sinusoidal_position_encoding sinusoidal_shift_matrix",
    "capsule": "Capsule DynamicRouting EPS Squash VARIANTS capsule_lengths capsule_margin_loss dynamic_routing "
               "dynamic_routing_composed soft_kmeans_objective squash squash_composed",
    "crf": "CRF EXACT_STEPS LogPartition allowed_transitions crf_log_partition crf_log_partition_composed "
           "crf_marginals crf_nll crf_nll_composed crf_path_score viterbi_decode",
    "gan": "AdversarialLoss CascadingRejection CascadingRejectionHead DCGANDiscriminator DCGANGenerator LOSSES "
           "MLPDiscriminator MLPGenerator Term cascading_rejection cascading_rejection_composed discriminator_loss "
           "discriminator_loss_composed generator_loss generator_loss_composed input_gradient interpolate "
           "r1_penalty r2_penalty train_step wgan_gp_penalty zero_centered_gp",
    "margin": "AMSoftmax ASoftmax ArcFace ContrastiveLoss CosineMarginSoftmax LOSSES MarginHead NORM_EPS "
              "NormalizedSoftmax TripletLoss a_softmax_loss a_softmax_loss_ref am_softmax_loss am_softmax_loss_ref "
              "arcface_loss arcface_loss_ref contrastive_loss contrastive_loss_ref normalized_softmax_loss "
              "normalized_softmax_loss_ref triplet_loss triplet_loss_ref",
    "margin_data": "ACTIONS CITIES COMPARE CharVocab DAYS DISHES EVENTS NOUNS OBJECTS PLACES PROBLEMS PROBLEM_OBJECTS "
                   "PRODUCTS PUNCT RECOMMEND ROUTE_CITIES SKILLS SYMPTOMS SYN TEMPLATES WORDS groups_from_pairs "
                   "split_groups synthetic_paraphrase_groups",
    "vae": "ClusterKL ClusterVAE GaussianKL Reparameterize VAE cluster_kl_terms cluster_kl_terms_composed gaussian_kl "
           "gaussian_kl_composed gaussian_log_prob reparameterize reparameterize_composed",
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_is_kept_under_minigrad_models(module):
    mod = importlib.import_module(f"minigrad.models.{module}")
    missing = [name for name in PUBLIC[module].split() if not hasattr(mod, name)]
    assert not missing, f"minigrad.models.{module} lost {missing}"


def test_margin_references_are_named_composed_and_the_old_names_point_to_them():
    from minigrad.models import margin
    for name in ("normalized_softmax_loss", "am_softmax_loss", "a_softmax_loss", "arcface_loss", "triplet_loss",
                 "contrastive_loss"):
        assert getattr(margin, f"{name}_ref") is getattr(margin, f"{name}_composed")
