"""The Fréchet distance of the DCGAN example against closed forms."""
import numpy as np

from examples import gan_dcgan


def test_frechet_distance_of_identical_samples_is_zero():
    f = np.random.default_rng(0).standard_normal((500, 6))
    assert abs(gan_dcgan.frechet_distance(f, f)) < 1e-8


def test_frechet_distance_of_a_shift_is_its_squared_length():
    f = np.random.default_rng(1).standard_normal((400, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert np.isclose(gan_dcgan.frechet_distance(f + shift, f), (shift ** 2).sum(), rtol=1e-6)


def test_frechet_distance_of_scaled_gaussians():
    # N(0, a²I) vs N(0, b²I) in d dimensions: d·(a − b)², here from the samples' own covariances
    f = np.random.default_rng(2).standard_normal((800, 4))
    c = np.cov(f, rowvar=False)
    from scipy import linalg
    expected = np.trace(4 * c + c - 2 * linalg.sqrtm(2 * c @ c).real)
    assert np.isclose(gan_dcgan.frechet_distance(2 * f, f), expected, rtol=1e-6)
