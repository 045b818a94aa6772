import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import qface.heads  # noqa: E402
from conftest import read_json, run_qface  # noqa: E402


def margin_case(tmp_path, name, seed=11):
    """Random raw embeddings, labels and centres, and `qface margin` on them."""
    rng = np.random.default_rng(seed)
    emb = (rng.standard_normal((16, 8)) * rng.uniform(5, 40, (16, 1))).astype(np.float32)
    labels = rng.integers(0, 5, 16).astype(np.int64)
    kernel = rng.standard_normal((8, 5)).astype(np.float32)
    for n, a in (("e", emb), ("l", labels), ("k", kernel)):
        np.save(tmp_path / f"{n}.npy", a)
    run_qface("margin", "--head", name, "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "l.npy",
              "--kernel", tmp_path / "k.npy", "--out", tmp_path / "m.json", "--grad-out", tmp_path / "g")
    return emb, labels, kernel, read_json(tmp_path / "m.json")


@pytest.mark.parametrize("name", ["adaface", "magface", "arcface", "cosface", "curricularface"])
def test_loss_and_gradients_equal_qface_margin(name, tmp_path):
    emb, labels, kernel, cli = margin_case(tmp_path, name)

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


def curricularface_reference(emb, labels, kernel, m=0.5, s=64.0, t=0.0, momentum=0.01):
    """CurricularFace (Huang et al., CVPR 2020) in plain torch, from the paper's
    formula: target cos(theta_y + m) (cos_y - m sin(pi - m) once theta_y + m
    passes pi), negatives above cos(theta_y + m) become cos_j (t + cos_j), t a
    running mean of the target cosine updated before use. Returns (loss, t)."""
    x = emb / emb.norm(dim=1, keepdim=True)
    w = kernel / kernel.norm(dim=0, keepdim=True)
    cos = torch.clamp(x @ w, -1.0, 1.0)
    onehot = torch.nn.functional.one_hot(labels, cos.shape[1]).bool()
    cos_y = cos[onehot]
    cos_y_m = cos_y * math.cos(m) - torch.sqrt(1.0 - cos_y ** 2) * math.sin(m)
    target = torch.where(cos_y > math.cos(math.pi - m), cos_y_m, cos_y - m * math.sin(math.pi - m))
    t = momentum * cos_y.detach().mean() + (1.0 - momentum) * t
    hard = (cos > cos_y_m.detach()[:, None]) & ~onehot
    negatives = torch.where(hard, cos * (t + cos), cos)
    logits = s * torch.where(onehot, target[:, None].expand_as(cos), negatives)
    return torch.nn.functional.cross_entropy(logits, labels), t


def test_curricularface_equals_a_plain_torch_reference(tmp_path):
    emb, labels, kernel, cli = margin_case(tmp_path, "curricularface", seed=5)
    x = torch.from_numpy(emb).requires_grad_(True)
    w = torch.from_numpy(kernel).requires_grad_(True)
    loss, t = curricularface_reference(x, torch.from_numpy(labels), w)
    loss.backward()
    assert loss.item() == pytest.approx(cli["loss"], rel=1e-5)
    assert t.item() == pytest.approx(cli["t"], rel=1e-5)
    assert sum(cli["hard_negatives"]) > 0  # the case exercises the hard branch
    np.testing.assert_allclose(x.grad.numpy(), np.load(tmp_path / "g" / "d_embeddings.npy"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), np.load(tmp_path / "g" / "d_kernel.npy"), rtol=1e-4, atol=1e-6)

    # The Python head moves t the same way, call after call (before use).
    head = qface.heads.CurricularFace(embedding_size=8, num_classes=5)
    with torch.no_grad():
        head.kernel.copy_(torch.from_numpy(kernel))
    t_ref = 0.0
    for _ in range(3):
        loss, _ = head(torch.from_numpy(emb), torch.from_numpy(labels))
        ref, t_ref = curricularface_reference(torch.from_numpy(emb), torch.from_numpy(labels),
                                              torch.from_numpy(kernel), t=t_ref)
        assert head.terms()["t"].item() == pytest.approx(t_ref.item(), rel=1e-5)
        assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_adaface_fixed_z_and_first_batch_options():
    torch.manual_seed(2)
    emb, labels = torch.randn(12, 8) * 20, torch.randint(0, 4, (12,))
    ada = qface.heads.AdaFace(embedding_size=8, num_classes=4, fixed_z=0.0)
    cos = qface.heads.CosFace(embedding_size=8, num_classes=4, m=0.4, eps=1e-3)
    with torch.no_grad():
        cos.kernel.copy_(ada.kernel)
    assert ada(emb, labels)[0].item() == pytest.approx(cos(emb, labels)[0].item(), rel=1e-5)

    first = qface.heads.AdaFace(embedding_size=8, num_classes=4, stats_init="first_batch")
    first(emb, labels)
    norms = emb.norm(dim=1).clamp(0.001, 100)
    assert first.terms()["batch_mean"].item() == pytest.approx(norms.mean().item(), rel=1e-5)
    assert first.terms()["batch_std"].item() == pytest.approx(norms.std().item(), rel=1e-5)
    assert first.terms()["stats_initialized"].item() == 1.0
    with pytest.raises(qface.Error, match="fixed_z"):
        qface.heads.AdaFace(embedding_size=8, num_classes=4, fixed_z=2.0)


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
