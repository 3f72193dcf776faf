/* loss.h — the training loss of Diffusion Hyperfeatures ("CLIP symmetric
 * cross-entropy", compute_clip_loss in the paper's code) and the mapping of
 * keypoints to flat indices of the R x R descriptor grid.
 *
 *   A = desc_src as [R*R, P] rows, B = desc_trg likewise, rows L2-normalised (no eps)
 *   logits_st = A B^T / 0.07,  logits_ts = B A^T / 0.07
 *   loss = 1/2 (CE(logits_st[src_idx], trg_idx) + CE(logits_ts[trg_idx], src_idx))
 *
 * Only the 2K logit rows the loss reads are computed ([K, P] @ [P, R*R]); the two
 * R^2 x R^2 matrices never exist. */
#ifndef DHF_TRAIN_LOSS_H
#define DHF_TRAIN_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "shim/torch_shim.h"

#define DHF_CLIP_TEMPERATURE 0.07

/* Grid coordinate -> grid cell: clip to [0, R-1], then round half to EVEN
 * (NumPy's round: 2.5 -> 2, 3.5 -> 4). */
int64_t dhf_grid_round(double v, int R);
/* Flat index y*R + x of a keypoint given in grid units. */
int64_t dhf_grid_index(double x, double y, int R);
/* Original-image pixel coordinate -> grid units: v * R / size (no half-pixel
 * offset), size = image width for x, height for y. */
double dhf_pixel_to_grid(double v, double size, int R);

/* Keypoint pairs -> index pairs, keeping only pairs visible in both images (a NULL
 * visibility array means all visible). xy arrays hold n (x, y) pairs in GRID units.
 * Writes at most n indices to src_idx/trg_idx; returns the number kept. */
int dhf_keypoints_to_indices(const float *src_xy, const float *trg_xy, const bool *src_vis,
                             const bool *trg_vis, int n, int R, int64_t *src_idx,
                             int64_t *trg_idx);
/* Same with coordinates in original pixels of images of size (w, h) each. */
int dhf_keypoints_px_to_indices(const float *src_xy, double src_w, double src_h,
                                const float *trg_xy, double trg_w, double trg_h,
                                const bool *src_vis, const bool *trg_vis, int n, int R,
                                int64_t *src_idx, int64_t *trg_idx);

typedef struct {
    dhf_tensor loss;             /* [] total, differentiable */
    dhf_tensor loss_src;         /* [] CE of the source-keypoint rows */
    dhf_tensor loss_trg;         /* [] CE of the target-keypoint rows */
    dhf_tensor logits_src_rows;  /* [K, R*R] logits_st[src_idx, :] */
    dhf_tensor logits_trg_rows;  /* [K, R*R] logits_ts[trg_idx, :] */
} dhf_clip_loss_result;

/* desc_src, desc_trg: [P, R, R] (or [1, P, R, R]); K >= 1 index pairs in [0, R*R).
 * Fills *res with NEW handles (free with dhf_clip_loss_result_free). */
int dhf_clip_loss(dhf_tensor desc_src, dhf_tensor desc_trg, const int64_t *src_idx,
                  const int64_t *trg_idx, int K, dhf_clip_loss_result *res);
void dhf_clip_loss_result_free(dhf_clip_loss_result *res);

#endif
