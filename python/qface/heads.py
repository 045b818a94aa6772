"""qface's margin heads as torch.nn.Modules, for Python PyTorch training loops.

    import torch, qface.heads
    head = qface.heads.AdaFace(embedding_size=512, num_classes=10_000)
    loss, logits = head(embeddings, labels)   # raw (unnormalized) embeddings
    loss.backward()                           # autograd through the C++ head

The loss is exactly docs/method.md's ("Margin heads"; the numbers `qface margin` prints): the head
normalizes the embeddings, takes their norm as the quality proxy (AdaFace,
MagFace) and applies the margin to each row's target logit. The class centres
are the Parameter `kernel` [D, C]; AdaFace's running batch statistics of the
norm and CurricularFace's t live in the C++ head (`terms()` shows them). CPU
float32 only. Formulas: docs/method.md, "Margin heads".
Needs Debian's python3-torch (the same LibTorch as qface).
"""
import torch

from . import _torch


class MarginHead(torch.nn.Module):
    """A margin head by name (adaface, magface, magface-cos, arcface, cosface,
    curricularface); options not given take the paper's defaults (m, h, s,
    t_alpha, l_a, u_a, ...; AdaFace also stats_init="official"|"first_batch"
    and fixed_z in [-1, 1])."""

    def __init__(self, name, embedding_size=512, num_classes=1000, **options):
        super().__init__()
        self._head = _torch.make_head(name, embedding_size, num_classes, options)
        self.kernel = torch.nn.Parameter(self._head.kernel().detach().clone())
        self._head.set_kernel(self.kernel)

    def forward(self, embeddings, labels):
        """embeddings [B, D] raw, labels [B] int64 -> (loss, logits [B, C])."""
        norms = torch.norm(embeddings, 2, 1, True)
        loss, logits, _, _ = self._head.loss(embeddings / norms, norms, labels)
        return loss, logits

    def train(self, mode=True):
        super().train(mode)
        self._head.set_training(mode)
        return self

    def terms(self):
        """The last call's per-sample margin terms and the head's buffers, as tensors."""
        return self._head.terms()


class AdaFace(MarginHead):
    """AdaFace (CVPR 2022): margin adapted to the feature norm (docs/method.md, Margin heads).
    stats_init="first_batch" starts the norm statistics at the first batch's;
    fixed_z=-1/0/+1 holds the margin at ArcFace / CosFace / cos(theta - m) - 2m."""

    def __init__(self, embedding_size=512, num_classes=1000, **options):
        super().__init__("adaface", embedding_size, num_classes, **options)


class MagFace(MarginHead):
    """MagFace (CVPR 2021): margin growing with the magnitude, plus its regularizer (docs/method.md, Margin heads)."""

    def __init__(self, embedding_size=512, num_classes=1000, **options):
        super().__init__("magface", embedding_size, num_classes, **options)


class ArcFace(MarginHead):
    """ArcFace: additive angular margin."""

    def __init__(self, embedding_size=512, num_classes=1000, **options):
        super().__init__("arcface", embedding_size, num_classes, **options)


class CosFace(MarginHead):
    """CosFace: additive cosine margin."""

    def __init__(self, embedding_size=512, num_classes=1000, **options):
        super().__init__("cosface", embedding_size, num_classes, **options)


class CurricularFace(MarginHead):
    """CurricularFace (CVPR 2020): ArcFace's target logit, hard negatives
    re-weighted by (t + cos), t a running mean of the target cosine."""

    def __init__(self, embedding_size=512, num_classes=1000, **options):
        super().__init__("curricularface", embedding_size, num_classes, **options)
