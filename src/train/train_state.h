/* train_state.h — what a training checkpoint holds beyond the tensors, and its
 * save / restore through checkpoint.h: the network's parameters under their stable
 * names, the AdamW moments and step count, the data-order generator (seed +
 * counter), the best validation metric so far, the feature-cache identity, the
 * resolved config and a trainer_state JSON object with the data layout
 * ({"epoch", "steps_per_epoch", "total_steps", "batch_size", "train_pairs",
 * "train_subset_hash", "val_pairs", "val_subset_hash"}). Nothing time-dependent is
 * stored, so the same training state always gives the same file, byte for byte. */
#ifndef DHF_TRAIN_TRAIN_STATE_H
#define DHF_TRAIN_TRAIN_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "train/aggregator.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/pair_sampler.h"

typedef struct {
    int64_t step;                  /* optimiser steps done */
    int epoch;                     /* epoch of that step (0 before the first) */
    dhf_train_rng rng;             /* data order once steps 1..step were drawn */
    bool has_best;
    char best_metric[64];
    double best_value;
    int64_t best_step;
    /* layout of the data, checked on resume */
    int64_t steps_per_epoch, total_steps;
    int batch_size;
    long train_pairs, val_pairs;
    char train_hash[17], val_hash[17];
} dhf_train_progress;

/* Writes `path` atomically. Refuses (-1, nothing written) when a parameter is not
 * finite, so a diverged network never replaces a good checkpoint. cfg->run_name
 * goes into the metadata. */
int dhf_train_state_save(const char *path, const dhf_aggregator *a, const dhf_agg_adamw *opt,
                         const dhf_config *cfg, const dhf_cache_identity *cache_id,
                         const dhf_train_progress *pr);

/* Restores parameters, moments and the AdamW step count from `path` into a and opt
 * (both already built with the right shapes) and fills *pr from its metadata;
 * *cache_id (may be NULL) receives the checkpoint's cache identity with its
 * features_json copied into features_buf (capacity features_cap). */
int dhf_train_state_load(const char *path, dhf_aggregator *a, dhf_agg_adamw *opt,
                         dhf_train_progress *pr, dhf_cache_identity *cache_id,
                         char *features_buf, size_t features_cap);

/* 0 when two progress records describe the same data layout (steps per epoch,
 * batch size, pair counts and subset hashes; total steps may differ); else -1 with a
 * message naming the field, `path` the checkpoint. */
int dhf_train_progress_check_layout(const dhf_train_progress *run, const dhf_train_progress *now,
                                    const char *path);

#endif
