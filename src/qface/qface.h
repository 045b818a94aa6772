// qface's public C++ API: what a program built against an installed qface
// (`find_package(qface)`, target qface::qface) and the Python module use.
// Every other header under qface/ is an implementation detail of its area and
// may change without notice. The areas, bottom up: core, io, data, heads,
// backbones, eval, infer, synth, train, deploy, study (README, Layout).
#pragma once

#include "qface/version.h"

// Errors: every failure on user input is a qface::Error naming the file and
// position; reading files, writing them atomically.
#include "qface/core/error.h"
#include "qface/core/fs.h"
// Flip fusion of embeddings and norms (fuse_flip), the one the whole library uses.
#include "qface/core/tensor_util.h"

// Formats of the field: torch checkpoints without Python, RecordIO, .bin
// verification sets, images (decode with header checks), five-point alignment.
#include "qface/data/alignment.h"
#include "qface/data/bin_set.h"
#include "qface/data/image.h"
#include "qface/data/recordio.h"
#include "qface/io/checkpoint.h"

// Models: backbones, margin heads by name (AdaFace, MagFace, ArcFace, CosFace,
// CurricularFace) with their options described once (heads/head_config.h).
#include "qface/backbones/backbone.h"
#include "qface/heads/factory.h"
#include "qface/heads/head.h"

// Inference: load a model for inference (precision fp32 / bf16 / int8 / auto),
// preprocess aligned crops, embed (embedding + norm, the quality score).
#include "qface/infer/embed.h"
#include "qface/infer/precision.h"

// Evaluation: verification (10-fold), IJB-B/C templates, rank-k
// identification, quality curves (EDC / ERC), clustering, features on disk.
#include "qface/eval/cluster.h"
#include "qface/eval/features.h"
#include "qface/eval/ijb.h"
#include "qface/eval/ijb_meta.h"
#include "qface/eval/quality.h"
#include "qface/eval/rank.h"
#include "qface/eval/verify.h"

// Training: the TOML recipe and the training loop (c10d data parallel).
#include "qface/train/config.h"
#include "qface/train/trainer.h"

// Deployment: detect and align photos, photo -> embedding + quality, calibrated
// decisions, the faiss gallery.
#include "qface/deploy/align.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/gallery.h"
#include "qface/deploy/pipeline.h"

// Synthetic identities with ground-truth quality (tests, demos, the study).
#include "qface/synth/generate.h"
