/* predictions.h — the prediction dump (predictions.jsonl): one JSON object per
 * judged keypoint, written by `dhf eval` and read back by `dhf pck` so any
 * method's predictions can be scored under the same protocol.
 *
 * A line (numbers are written so they read back bit-identically):
 *   {"pair_id": "...", "pair": 0, "category": "dog", "kp_id": 3,
 *    "src_xy": [x, y], "gt_xy": [x, y], "pred_xy": [x, y], "distance": d,
 *    "target_size": [W, H], "target_bbox": [x1, y1, x2, y2],
 *    "img_size": max(W,H), "bbox_size": max(x2-x1, y2-y1),
 *    "threshold_img": {"0.1": t, ...}, "threshold_bbox": {"0.1": t, ...},
 *    "score": cosine, "viewpoint_variation": v, ... (attributes when known),
 *    "mutual": true|false (only when the mutual check ran)}
 * All coordinates are in ORIGINAL pixels. Reading needs only pair_id,
 * category, gt_xy, pred_xy, and target_size (or img_size) and target_bbox (or
 * bbox_size); distance and thresholds are recomputed, never trusted. */
#ifndef DHF_EVAL_PREDICTIONS_H
#define DHF_EVAL_PREDICTIONS_H

#include <cjson/cJSON.h>

#include "eval/pck.h"

typedef struct {
    const char *pair_id;
    int pair;                    /* index of the pair in the run */
    const char *category;
    int kp_id;                   /* -1 = unknown */
    double src[2], gt[2], pred[2];
    int target_size[2];          /* [W, H] */
    double target_bbox[4];
    int attr[DHF_PCK_NATTRS];    /* -1 = absent */
    double score;                /* NaN = not recorded */
    int mutual;                  /* -1 = not computed */
} dhf_prediction;

/* The line's JSON object (caller deletes), or NULL on out-of-memory. */
cJSON *dhf_prediction_to_json(const dhf_prediction *p, const double *alphas, int n_alphas);

typedef struct {
    dhf_pck_kp *kps;
    size_t n_kps;
    int n_pairs;                 /* distinct pair_id values, in order of first appearance */
    char **categories;           /* sorted by strcmp */
    int n_categories;
    /* The α the file was written with (keys of the first line's threshold_img),
     * 0 when the file has none. */
    int n_alphas;
    double alphas[DHF_PCK_MAX_ALPHAS];
} dhf_predictions;

/* Reads a whole predictions.jsonl; blank lines are skipped. Errors name
 * "FILE:LINE" and the field. An empty file is an error. */
int dhf_predictions_load(const char *path, dhf_predictions *out);
void dhf_predictions_free(dhf_predictions *p);

#endif
