/* train_device.h — placing the aggregation network and its AdamW state on a compute
 * device. Parameters stay the same handles (the network's parameter list and the
 * optimiser refer to them), re-pointed at a copy on the device, so nothing that
 * holds a handle has to be told. fp32 everywhere: the network is small, and the
 * features arrive as float32 (see docs/TRAINING.md, "Devices"). */
#ifndef DHF_TRAIN_TRAIN_DEVICE_H
#define DHF_TRAIN_TRAIN_DEVICE_H

#include "shim/torch_shim.h"
#include "train/aggregator.h"
#include "train/optim.h"

/* "cpu", "cuda", "cuda:N" -> *dev; CUDA must be available in this libtorch and the
 * index in range. Errors name the setting (`what`, e.g. "--device"). */
int dhf_train_parse_device(const char *s, const char *what, dhf_device *dev);

/* Moves every parameter (kept as an autograd leaf) and, when opt is not NULL, the
 * AdamW moments to dev. A no-op for the CPU when they already are there. */
int dhf_train_to_device(dhf_aggregator *a, dhf_agg_adamw *opt, dhf_device dev);

#endif
