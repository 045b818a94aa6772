import numpy as np
import pytest

torch = pytest.importorskip("torch")
import qface.heads  # noqa: E402
from conftest import read_json, run_qface  # noqa: E402


@pytest.mark.parametrize("name", ["adaface", "magface", "arcface", "cosface"])
def test_loss_and_gradients_equal_qface_margin(name, tmp_path):
    rng = np.random.default_rng(11)
    emb = (rng.standard_normal((16, 8)) * rng.uniform(5, 40, (16, 1))).astype(np.float32)
    labels = rng.integers(0, 5, 16).astype(np.int64)
    kernel = rng.standard_normal((8, 5)).astype(np.float32)
    for n, a in (("e", emb), ("l", labels), ("k", kernel)):
        np.save(tmp_path / f"{n}.npy", a)
    run_qface("margin", "--head", name, "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "l.npy",
              "--kernel", tmp_path / "k.npy", "--out", tmp_path / "m.json", "--grad-out", tmp_path / "g")
    cli = read_json(tmp_path / "m.json")

    head = qface.heads.MarginHead(name, embedding_size=8, num_classes=5)
    with torch.no_grad():
        head.kernel.copy_(torch.from_numpy(kernel))
    x = torch.from_numpy(emb).requires_grad_(True)
    loss, logits = head(x, torch.from_numpy(labels))
    loss.backward()
    assert logits.shape == (16, 5)
    assert loss.item() == pytest.approx(cli["loss"], rel=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), np.load(tmp_path / "g" / "d_embeddings.npy"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(head.kernel.grad.numpy(), np.load(tmp_path / "g" / "d_kernel.npy"), rtol=1e-4, atol=1e-6)


def test_a_few_sgd_steps_lower_the_loss():
    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    labels = torch.arange(4).repeat(8)
    x = centres[labels] * 20 + torch.randn(32, 16)
    net = torch.nn.Linear(16, 16)
    head = qface.heads.AdaFace(embedding_size=16, num_classes=4)
    opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), lr=0.05)
    losses = []
    for _ in range(30):
        loss, _ = head(net(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert "batch_mean" in head.terms()


def test_bad_inputs_raise_qface_errors():
    head = qface.heads.ArcFace(embedding_size=8, num_classes=3)
    with pytest.raises(qface.Error):
        head(torch.randn(4, 8), torch.tensor([0, 1, 2, 3]))  # label 3 of 3 classes
    with pytest.raises(qface.Error, match="unknown"):
        qface.heads.MarginHead("adaface", 8, 3, q=1.0)
