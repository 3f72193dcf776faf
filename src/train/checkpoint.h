/* checkpoint.h — training checkpoints as safetensors files. Generic over a list of
 * named tensors (it knows nothing about the network), so the trainer, `dhf eval
 * --checkpoint` and `dhf heatmap` share one format:
 *
 *   <name>                     each parameter under its stable name
 *                              ("mixing_weights", "bottlenecks.{l}.conv1.weight", ...)
 *   optim.exp_avg.<name>       AdamW first moment, same shape and dtype
 *   optim.exp_avg_sq.<name>    AdamW second moment
 *   __metadata__ (strings):
 *     dhf_schema               "dhf-checkpoint-1" (magic + version; others are refused)
 *     dhf_version              the writing build
 *     step                     optimiser steps done when the file was written (decimal)
 *     run_name
 *     config                   the resolved config, dhf_config_to_json
 *     rng.algorithm            the trainer's data-order generator, e.g. "splitmix64"
 *     rng.seed, rng.counter    decimal u64: seed and draws consumed
 *     rng.state                0..4 decimal u64 state words, space-separated ("" = none)
 *     best.metric, best.value, best.step      only when a best metric exists;
 *                              value printed with %.17g (exact for a double)
 *     optim, optim.step        "adamw" and its step count (decimal); only with moments
 *     cache_identity           JSON: {"model_name", "model_hash", "features": {...},
 *                              "save_timestep": [...], "layer_shapes": [[C,H,W],...]}
 *     trainer_state            a JSON object the trainer owns ("{}" when unused)
 *
 * Writes are atomic (the safetensors writer saves to a temporary name, fsyncs and
 * renames). Values are stored in the tensors' own dtype, so save -> load is bit-exact.
 * Errors: -1 with dhf_err_msg() naming the file and the tensor or metadata key. */
#ifndef DHF_TRAIN_CHECKPOINT_H
#define DHF_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "cache/cache_identity.h"
#include "shim/torch_shim.h"

#define DHF_CKPT_SCHEMA "dhf-checkpoint-1"
#define DHF_CKPT_SCHEMA_PREFIX "dhf-checkpoint-"
#define DHF_CKPT_EXP_AVG_PREFIX "optim.exp_avg."
#define DHF_CKPT_EXP_AVG_SQ_PREFIX "optim.exp_avg_sq."
#define DHF_CKPT_RNG_WORDS 4

/* One parameter. All handles BORROWED. exp_avg / exp_avg_sq are both set or both
 * NULL: NULL on save writes no moments for it; NULL on load leaves the file's
 * moments unread (how `dhf eval --checkpoint` loads only the network). */
typedef struct {
    const char *name;
    dhf_tensor param;
    dhf_tensor exp_avg;
    dhf_tensor exp_avg_sq;
} dhf_ckpt_entry;

/* The trainer's data-order generator. A counter-based generator (splitmix64 of
 * seed + counter) is fully described by seed and counter; a stateful one
 * (xoshiro256) also stores its words. */
typedef struct {
    char algorithm[32];
    uint64_t seed;
    uint64_t counter;
    int num_words;                            /* 0..DHF_CKPT_RNG_WORDS */
    uint64_t words[DHF_CKPT_RNG_WORDS];
} dhf_ckpt_rng;

/* Checkpoint metadata. For dhf_ckpt_save the caller fills it (string pointers are
 * the caller's; NULL config_json / trainer_json are written as "{}"). dhf_ckpt_load
 * and dhf_ckpt_read_meta fill it with strings owned by the struct: release them
 * with dhf_ckpt_meta_free. */
typedef struct {
    int64_t step;
    char run_name[DHF_CFG_STR];
    const char *config_json;
    dhf_ckpt_rng rng;
    bool has_best;
    char best_metric[64];           /* e.g. "pck_bbox" */
    double best_value;
    int64_t best_step;
    bool has_cache;
    dhf_cache_identity cache;
    const char *trainer_json;
    int64_t optim_step;             /* AdamW step count (bias correction) */
    /* filled by load / read_meta only */
    char schema[64];
    char dhf_version[32];
    bool has_optim;                 /* the file holds AdamW moments */
    char *owned_[3];                /* private: storage behind the pointers above */
} dhf_ckpt_meta;

/* Zeroes *m; best_step -1, rng.algorithm "splitmix64". */
void dhf_ckpt_meta_init(dhf_ckpt_meta *m);
/* Frees what load / read_meta allocated and re-inits; never frees caller strings. */
void dhf_ckpt_meta_free(dhf_ckpt_meta *m);

/* Writes `path` atomically: n entries (unique names, moments shaped like their
 * parameter) and the metadata. Tensors may live on any device. */
int dhf_ckpt_save(const char *path, const dhf_ckpt_entry *entries, int n,
                  const dhf_ckpt_meta *meta);

/* Restores every entry's parameter (and moments, where the entry has them) from
 * `path` into the existing handles, without recording autograd. Everything is
 * checked before anything is written, so a refused file leaves the handles as they
 * were: the schema, every tensor present with the handle's exact shape and dtype,
 * and no tensor in the file that no entry names. meta (may be NULL) receives the
 * metadata (dhf_ckpt_meta_free it). */
int dhf_ckpt_load(const char *path, const dhf_ckpt_entry *entries, int n, dhf_ckpt_meta *meta);

/* Only the metadata (schema checked); no tensor is read. */
int dhf_ckpt_read_meta(const char *path, dhf_ckpt_meta *meta);

/* The checkpoint's config: built-in defaults, then meta->config_json applied. */
int dhf_ckpt_meta_config(const dhf_ckpt_meta *meta, dhf_config *cfg);

#endif
