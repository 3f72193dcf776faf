/* train_metrics.h — <run>/metrics.jsonl, the training log: one JSON object per line,
 * flushed per line (core/jsonl.h).
 *
 *   {"type":"train","step":S,"epoch":E,"loss":..,"loss_src":..,"loss_trg":..,"lr":..,
 *    "pairs":B,"keypoints":K,"steps_per_s":..,"elapsed_s":..}
 *   {"type":"val","step":S,"pck_img":..,"pck_bbox":..,"alpha":..,"metric":"pck_bbox",
 *    "best":true|false,"best_value":..,"best_step":..,"n_pairs":..,"n_keypoints":..,
 *    "seconds":..}
 *
 * step = optimiser steps done (1-based). Numbers are written so they read back
 * bit-identically. Every field that depends on timing comes last in its record
 * (steps_per_s, elapsed_s, seconds), so two runs' logs compare equal once those
 * tails are cut. On resume from a checkpoint at step k the records with step > k
 * (and any unreadable partial last line) are removed before appending. */
#ifndef DHF_TRAIN_TRAIN_METRICS_H
#define DHF_TRAIN_TRAIN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/jsonl.h"
#include "train/validate.h"

typedef struct {
    int64_t step;
    int epoch;
    double loss, loss_src, loss_trg;   /* means over the step's pairs */
    double lr;
    int pairs, keypoints;
    double steps_per_s, elapsed_s;
} dhf_train_record;

typedef struct {
    int64_t step;
    const dhf_val_result *val;
    double alpha;
    const char *metric;
    bool best;                 /* this validation set a new best */
    double best_value;
    int64_t best_step;
} dhf_val_record;

/* Rewrites `path` atomically keeping only readable records with step <= keep_step
 * (an absent file is fine: nothing to keep); *kept (may be NULL) gets their count.
 * Then opens it for appending. */
int dhf_train_metrics_open(dhf_jsonl *log, const char *path, int64_t keep_step, long *kept);
int dhf_train_metrics_write_train(dhf_jsonl *log, const dhf_train_record *r);
int dhf_train_metrics_write_val(dhf_jsonl *log, const dhf_val_record *r);

#endif
