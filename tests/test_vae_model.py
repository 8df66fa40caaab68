import torch

from gencli.inference.vae import prior_samples
from gencli.models.vae import VAE, VAEConfig


def test_shapes_vae_and_cvae():
    for classes in (0, 10):
        model = VAE(VAEConfig(hidden=(16, 8), latent_dim=3, num_classes=classes))
        x = torch.rand(5, 1, 28, 28)
        y = torch.arange(5)
        logits, mu, logvar = model(x, y)
        assert logits.shape == (5, 1, 28, 28)
        assert mu.shape == logvar.shape == (5, 3)
        assert model.encoder[0].in_features == 784 + classes
        assert model.decoder[0][0].in_features == 3 + classes


def test_cvae_output_depends_on_label():
    torch.manual_seed(0)
    model = VAE(VAEConfig(hidden=(16,), num_classes=10))
    z = torch.zeros(2, 2)
    out = model.decode(z, torch.tensor([1, 8]))
    assert not torch.allclose(out[0], out[1])


def test_reparameterization_has_requested_moments():
    torch.manual_seed(0)
    mu = torch.full((200_000, 1), 2.0)
    logvar = torch.full((200_000, 1), torch.log(torch.tensor(9.0)))
    z = VAE.reparameterize(mu, logvar)
    assert abs(z.mean().item() - 2.0) < 0.03
    assert abs(z.std().item() - 3.0) < 0.03


def test_prior_samples_do_not_depend_on_the_batch():
    model = VAE(VAEConfig(hidden=(16,)))
    together = prior_samples(model, [3, 4, 5])
    alone = prior_samples(model, [4])
    assert torch.allclose(together[1], alone[0])
    assert not torch.allclose(together[0], together[1])


def test_dropout_acts_only_while_training_and_keeps_the_layout():
    torch.manual_seed(0)
    plain, dropped = VAE(VAEConfig(hidden=(32, 16))), VAE(VAEConfig(hidden=(32, 16), dropout=0.5))
    # Same parameters under the same names: dropout adds no weights, and models without it keep their keys.
    assert [n for n, _ in plain.named_parameters()] == ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight",
                                                         "encoder.2.bias", *[n for n, _ in plain.named_parameters()][4:]]
    assert [p.shape for p in plain.parameters()] == [p.shape for p in dropped.parameters()]
    z = torch.randn(8, 2)
    dropped.train()
    assert not torch.allclose(dropped.decode(z), dropped.decode(z))  # a different mask each call
    dropped.eval()
    assert torch.equal(dropped.decode(z), dropped.decode(z))
    samples = prior_samples(dropped.train(), [0, 1])  # sampling switches dropout off
    assert torch.equal(samples, prior_samples(dropped, [0, 1]))
