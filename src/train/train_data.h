/* train_data.h — what the trainer feeds the network, all from the feature cache
 * (the UNet never runs during training): the training and validation pair sets
 * selected by the config, with every image looked up in the cache; the keypoint ->
 * grid-index mapping of the paper's training code; an image set's cached features
 * as tensors.
 *
 * Keypoint mapping (train_hyperfeatures.py, load_image_pair with output_size):
 * original pixel (x, y) of an image of W x H -> grid (x * (R / W), y * (R / H)),
 * the scale computed first as rescale_points does, no half-pixel offset; the loss
 * module's dhf_grid_index then clips to [0, R-1] and rounds half to even. */
#ifndef DHF_TRAIN_TRAIN_DATA_H
#define DHF_TRAIN_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "eval/dataset.h"
#include "cache/feature_cache.h"
#include "shim/torch_shim.h"

typedef enum { DHF_TRAIN_SET = 0, DHF_VAL_SET = 1 } dhf_train_set_kind;

typedef struct {
    dhf_dataset ds;
    int64_t *src_row, *trg_row;   /* [ds.n_pairs]: cache rows of each pair's images */
    size_t dropped;               /* training pairs left out: no keypoint visible in both */
} dhf_train_pairs;

/* Selects the pairs (dataset spair only):
 *   train: split trn, or the pair list train_path; pairs_per_category with subset_seed
 *          (0 = all), the same selection `dhf extract` caches for split trn;
 *   val:   split val, or val_path; val_pairs_per_category with subset_seed.
 * Every image must be committed in the cache (else an error naming the pair, the key
 * and what to run). Image sizes come from the cache where the annotation has none
 * (pair lists) and must agree with it where it has. Training pairs without a
 * keypoint visible in both images are dropped (counted in `dropped`). */
int dhf_train_pairs_load(const dhf_config *cfg, dhf_train_set_kind kind,
                         dhf_feature_cache *cache, dhf_train_pairs *out);
void dhf_train_pairs_free(dhf_train_pairs *p);   /* zeroed struct or NULL ok */

/* Original pixel coordinate -> grid units: v * (R / size). */
double dhf_train_kp_to_grid(double v, double size, int R);
/* The keypoints of p visible in both images as flat grid indices (loss.h):
 * src_idx / trg_idx hold p->n_kps entries; returns how many were written. */
int dhf_train_pair_indices(const dhf_pair *p, int R, int64_t *src_idx, int64_t *trg_idx);

/* The cached features of n images (cache rows), per layer l: feats[l] NEW float32
 * [n, S, C_l, H_l, W_l] on `dev`; feats has dhf_cache_num_layers(c) entries. On
 * failure nothing is left allocated. */
int dhf_train_read_features(dhf_feature_cache *c, const int64_t *rows, int n, dhf_device dev,
                            dhf_tensor *feats);

#endif
