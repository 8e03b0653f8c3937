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


def test_frechet_distance_of_a_scaled_sample():
    # covariances 4C and C: tr(4C + C − 2(4C·C)^½) = tr(C), i.e. d·(a − b)² for N(0, a²I) vs N(0, b²I)
    f = np.random.default_rng(2).standard_normal((800, 4))
    f -= f.mean(0)                                             # equal means: only the covariance term is left
    assert np.isclose(gan_dcgan.frechet_distance(2 * f, f), np.trace(np.cov(f, rowvar=False)), rtol=1e-6)
