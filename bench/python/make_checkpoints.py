"""Writes checkpoints the way the official projects do, plus the embeddings
Python gets from them, for qface's checkpoint-import tests.

usage: make_checkpoints.py OUT_DIR
  adaface_ir18.ckpt   PyTorch Lightning style (zip): state_dict with model./head.
                      keys, an argparse.Namespace in hyper_parameters
  magface_ir18.pth    MagFace style, legacy (non-zip) torch.save:
                      {epoch, arch, state_dict (features.module.*, fc.weight), optimizer}
  mfn_module.pth      DataParallel state dict of a MobileFaceNet (module.*), zip
  input.npy           2x3x112x112 float32 input
  <name>.emb.npy / <name>.norm.npy   Python's (embedding, norm) for each
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qface_ref_models as R  # noqa: E402


def run(model, x):
    model.eval()
    with torch.no_grad():
        e, n = model(x)
    return e.numpy(), n.numpy()


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    x = torch.randn(2, 3, 112, 112)
    np.save(os.path.join(out, "input.npy"), x.numpy())

    # AdaFace: Lightning checkpoint.
    m = R.randomize_bn(R.make("ir_18"), 1)
    e, n = run(m, x)
    sd = {"model." + k: v for k, v in m.state_dict().items()}
    sd["head.kernel"] = torch.randn(512, 10)
    sd["head.batch_mean"] = torch.tensor([20.0])
    sd["head.batch_std"] = torch.tensor([100.0])
    hp = argparse.Namespace(arch="ir_18", head="adaface", m=0.4, h=0.333, lr=0.1, lr_milestones=[12, 20, 24])
    ckpt = {"epoch": 25, "global_step": 1000, "pytorch-lightning_version": "1.8.6", "state_dict": sd,
            "hyper_parameters": hp, "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
            "lr_schedulers": []}
    torch.save(ckpt, os.path.join(out, "adaface_ir18.ckpt"))
    np.save(os.path.join(out, "adaface_ir18.emb.npy"), e)
    np.save(os.path.join(out, "adaface_ir18.norm.npy"), n)

    # MagFace: legacy torch.save with an optimizer.
    m = R.randomize_bn(R.make("iresnet18"), 2)
    e, n = run(m, x)
    sd = {"features.module." + k: v for k, v in m.state_dict().items()}
    sd["fc.weight"] = torch.randn(10, 512)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    ckpt = {"epoch": 25, "arch": "iresnet18", "state_dict": sd, "optimizer": opt.state_dict()}
    torch.save(ckpt, os.path.join(out, "magface_ir18.pth"), _use_new_zipfile_serialization=False)
    np.save(os.path.join(out, "magface_ir18.emb.npy"), e)
    np.save(os.path.join(out, "magface_ir18.norm.npy"), n)

    # A DataParallel state dict, one tensor a non-contiguous view.
    m = R.randomize_bn(R.make("mobilefacenet"), 3)
    e, n = run(m, x)
    sd = {"module." + k: v for k, v in m.state_dict().items()}
    torch.save(sd, os.path.join(out, "mfn_module.pth"))
    np.save(os.path.join(out, "mfn_module.emb.npy"), e)
    np.save(os.path.join(out, "mfn_module.norm.npy"), n)


if __name__ == "__main__":
    main()
