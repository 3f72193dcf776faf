/* evaluate.h — a whole evaluation run: a descriptor provider over a pair set,
 * keypoint transfer, PCK, and the reports (predictions.jsonl, results.json,
 * results.md, a one-line summary). The protocol — dataset, split, subset,
 * load size, resize policy, matcher, averaging, α list, descriptor source — is
 * recorded with every result (docs/EVAL.md). */
#ifndef DHF_EVAL_EVALUATE_H
#define DHF_EVAL_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "eval/dataset.h"
#include "eval/match.h"
#include "eval/pck.h"
#include "eval/provider.h"

typedef struct {
    dhf_match_opts match;
    int n_alphas;
    double alphas[DHF_PCK_MAX_ALPHAS];
    const char *out_dir;        /* NULL: compute only, write nothing */
    bool dump_predictions;      /* write predictions.jsonl */
    size_t cache_bytes;         /* descriptor cache budget within the run (0 = 1 GiB) */
    bool progress;              /* show a progress bar */
    /* Optional extra protocol fields merged into results.json (e.g. the
     * resolved config); borrowed. */
    const cJSON *extra_protocol;
} dhf_eval_opts;

void dhf_eval_opts_default(dhf_eval_opts *o);   /* paper: L 224, stretch, argmax, α .01 .05 .1 .15 */

typedef struct {
    dhf_pck_report report;
    long n_pairs;               /* pairs evaluated */
    long n_pairs_without_keypoints;
    long n_images_described;    /* provider calls (cache misses) */
    double seconds;
    char summary[512];          /* the one-line summary */
} dhf_eval_result;

/* Runs the evaluation. Image sizes must be known (dhf_dataset_resolve_images).
 * On failure the message names the pair and image. */
int dhf_eval_run(const dhf_dataset *ds, dhf_provider *provider, const dhf_eval_opts *o,
                 dhf_eval_result *res);
void dhf_eval_result_free(dhf_eval_result *res);

/* The judged keypoints of one pair given predictions for all its keypoints
 * (pred_xy: n_kps × (x, y), original target pixels): invisible keypoints are
 * dropped; sizes from the target image and box; attributes carried. Returns
 * how many were written to out (capacity p->n_kps). */
int dhf_eval_pair_keypoints(const dhf_pair *p, int pair_index, int category, const double *pred_xy,
                            dhf_pck_kp *out);

/* The protocol fields every PCK result shares: {"alphas", "thresholds",
 * "averaging"} (dhf pck records these for a recomputation). */
cJSON *dhf_eval_protocol_common(const double *alphas, int n_alphas);

/* The protocol object of a run (without the metrics). */
cJSON *dhf_eval_protocol_json(const dhf_dataset *ds, const dhf_provider *provider, const dhf_eval_opts *o);

/* Writes <dir>/results.json ({"protocol", "metrics", "summary", "run"}) and
 * <dir>/results.md atomically. protocol and run are borrowed (run may be NULL). */
int dhf_eval_write_results(const char *dir, const dhf_pck_report *r, const cJSON *protocol, const cJSON *run,
                           const char *title);

/* "PCK@0.1 img 45.23 bbox 30.12 (pooled per keypoint; 360 pairs, 2345 keypoints)". */
void dhf_eval_summary_line(const dhf_pck_report *r, char *buf, size_t n);

/* Exact comparison of two metric objects (numbers by ==, nulls equal):
 * 0 when identical; -1 with the first differing path in the message. */
int dhf_eval_compare_metrics(const cJSON *a, const cJSON *b);

#endif
