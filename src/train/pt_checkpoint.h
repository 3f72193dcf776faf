/* pt_checkpoint.h — the authors' PyTorch checkpoints (`torch.save` of {"step", "config",
 * "aggregation_network": state_dict, "optimizer_state_dict"}) imported into dhf
 * checkpoints (checkpoint.h) and dhf checkpoints exported in that form.
 *
 * Names: the authors' `bottleneck_layers.{l}.0.<p>` is dhf's `bottlenecks.{l}.<p>`
 * (<p> = conv1.weight, conv1.norm.weight, ..., shortcut.norm.bias); `mixing_weights`
 * is the same, timestep-major [S*L]. L, S, P and C_l come from the shapes and are
 * checked against the stored config (projection_dim, save_timestep).
 *
 * AdamW: torch.optim.AdamW's state_dict keys its per-parameter state by the
 * parameter's position over the param groups. The authors' groups are
 * [mixing_weights] and bottleneck_layers.parameters(), whose order is detectron2's
 * BottleneckBlock registration order per layer: shortcut (weight, norm.weight,
 * norm.bias), then conv1, conv2, conv3 (each weight, norm.weight, norm.bias). Each
 * state holds "step" (a float tensor from torch 1.12 on, an int before), "exp_avg" and
 * "exp_avg_sq": dhf keeps one step count for all, the same moments, and the same
 * update arithmetic (shim: dhf_adamw_step), so a continued run takes the steps
 * torch.optim.AdamW would. */
#ifndef DHF_TRAIN_PT_CHECKPOINT_H
#define DHF_TRAIN_PT_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

typedef struct {
    int64_t step;                     /* the file's "step" (-1: absent) */
    int num_layers, num_timesteps, proj_dim;
    int channels[64];
    bool has_optim;                   /* AdamW moments imported */
    int64_t optim_step;
    char unused_config_keys[1024];    /* the authors' config keys dhf has no use for */
} dhf_pt_summary;

/* Reads `pt` (a torch.save zip; the restricted pickle of core/pickle.h), maps it as
 * above and writes the dhf checkpoint `out` (atomically), with the resolved dhf config
 * (defaults < the file's config) in its metadata and in `out_yaml` (for dhf extract and
 * dhf eval; NULL: none). Errors name the file, the key and what was expected. */
int dhf_pt_import(const char *pt, const char *out, const char *out_yaml, dhf_pt_summary *sum);

/* Writes the dhf checkpoint `ckpt` as a torch.save zip at `out` (atomically) in the
 * authors' layout: {"step", "config" (the paper-named keys of the checkpoint's
 * config), "aggregation_network": OrderedDict of float32 tensors, and
 * "optimizer_state_dict" when the checkpoint has AdamW moments}. */
int dhf_pt_export(const char *ckpt, const char *out, dhf_pt_summary *sum);

#endif
