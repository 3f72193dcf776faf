/* validate.h — the trainer's validation: PCK@pck_threshold (img and bbox, pooled
 * per keypoint as the paper's validate()) of the network being trained on the
 * validation pairs, through the evaluation module (eval/evaluate.h) with the
 * hyperfeature provider, so validation and `dhf eval` share every convention
 * (load_resolution, matcher, stretch frame). */
#ifndef DHF_TRAIN_VALIDATE_H
#define DHF_TRAIN_VALIDATE_H

#include "core/config.h"
#include "eval/dataset.h"
#include "cache/feature_cache.h"
#include "shim/torch_shim.h"
#include "engine/engine.h"
#include "train/aggregator.h"

typedef struct {
    double pck_img, pck_bbox;   /* fractions in [0, 1] */
    long n_pairs, n_keypoints;
    double seconds;
} dhf_val_result;

/* Evaluates `val` (image sizes known). Matcher options come from cfg (eval.matcher,
 * eval.softmax_temperature, eval.window_radius, load_resolution); eval.resize must
 * be stretch. Nothing is written. */
int dhf_train_validate(const dhf_dataset *val, const dhf_aggregator *a, dhf_runner *r,
                       dhf_agg_order order, dhf_feature_cache *cache, dhf_device dev,
                       const dhf_config *cfg, dhf_val_result *out);

/* The value of checkpoint_metric ("pck_img" | "pck_bbox") in r. */
double dhf_val_metric(const dhf_val_result *r, const char *metric);

#endif
