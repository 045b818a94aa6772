"""qface's AdaFace head inside a 20-line PyTorch loop (autograd runs through
the C++ head). Toy data: 8 identities in 32-d, with per-sample "quality"
scaling the feature norm the way low-quality faces shrink it.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/adaface_loop.py
"""
import torch

import qface.heads

torch.manual_seed(0)
ids, dim = 8, 32
centres = torch.nn.functional.normalize(torch.randn(ids, dim), dim=1)
labels = torch.arange(ids).repeat(64)
quality = torch.rand(len(labels), 1) * 0.9 + 0.1                  # 0.1 (bad) .. 1 (good)
inputs = centres[labels] * quality + 0.3 * torch.randn(len(labels), dim) * (1 - quality)
net = torch.nn.Sequential(torch.nn.Linear(dim, 64), torch.nn.PReLU(), torch.nn.Linear(64, dim))
head = qface.heads.AdaFace(embedding_size=dim, num_classes=ids)   # m 0.4, h 0.333, s 64 (the paper's)
opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.02, momentum=0.9)
for step in range(200):
    loss, logits = head(net(inputs), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == 199:
        acc = (logits.argmax(1) == labels).float().mean().item()
        print(f"step {step:3d}  loss {loss.item():7.3f}  train accuracy {acc:.2f}")
norms = net(inputs).norm(dim=1)
print("Pearson correlation of the feature norm with the input quality:",
      f"{torch.corrcoef(torch.stack([norms, quality.squeeze(1)]))[0, 1].item():.2f}")
