/* pck.h — PCK@α (percentage of correct keypoints): the per-keypoint judgement
 * and every average dhf reports (pooled per keypoint, per image, per category,
 * breakdowns by SPair's variation attributes), plus their JSON/Markdown form.
 *
 * The arithmetic mirrors the paper's compute_pck exactly so numbers agree to the
 * last bit: distance = sqrt(dx*dx + dy*dy) in double, threshold = alpha * size in
 * double, correct iff distance <= threshold. Everything is in the target image's
 * ORIGINAL pixel frame; no resize can touch a threshold. */
#ifndef DHF_EVAL_PCK_H
#define DHF_EVAL_PCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define DHF_PCK_MAX_ALPHAS 16

/* The two thresholds: img = α·max(W,H) of the target image, bbox = α·max(w,h)
 * of the target box. Index order of every [2] array below. */
enum { DHF_PCK_IMG = 0, DHF_PCK_BBOX = 1, DHF_PCK_NKINDS = 2 };

/* SPair-71k's per-pair difficulty attributes; -1 in a keypoint = absent. */
enum {
    DHF_PCK_ATTR_VIEWPOINT = 0,   /* viewpoint_variation */
    DHF_PCK_ATTR_SCALE,           /* scale_variation */
    DHF_PCK_ATTR_TRUNCATION,      /* truncation */
    DHF_PCK_ATTR_OCCLUSION,       /* occlusion */
    DHF_PCK_NATTRS
};
extern const char *const dhf_pck_attr_names[DHF_PCK_NATTRS];
extern const char *const dhf_pck_kind_names[DHF_PCK_NKINDS];   /* "img", "bbox" */

/* One judged keypoint: what PCK needs and nothing from the matcher. */
typedef struct {
    int pair;                    /* 0..n_pairs-1; the per-image average groups by it */
    int category;                /* index into the caller's category table */
    double gt[2], pred[2];       /* (x, y), target original pixels */
    double size[DHF_PCK_NKINDS]; /* img: max(W,H); bbox: max(r-l, b-t) */
    int attr[DHF_PCK_NATTRS];    /* per-pair attribute values, -1 = absent */
} dhf_pck_kp;

double dhf_pck_distance(const double pred[2], const double gt[2]);
double dhf_pck_img_size(double width, double height);                 /* max(W, H) */
double dhf_pck_bbox_size(double left, double top, double right, double bottom); /* max(r-l, b-t) */
double dhf_pck_threshold(double alpha, double size);                  /* alpha * size */
bool dhf_pck_correct(double distance, double alpha, double size);     /* distance <= alpha*size */

/* Counts and averages over one group of keypoints (all, one category, one
 * attribute value). Averages of an empty group are NaN (written as null). */
typedef struct {
    long n_keypoints;
    long n_pairs;                                     /* pairs with >= 1 keypoint in the group */
    long n_correct[DHF_PCK_NKINDS][DHF_PCK_MAX_ALPHAS];
    double per_keypoint[DHF_PCK_NKINDS][DHF_PCK_MAX_ALPHAS]; /* pooled: n_correct / n_keypoints */
    double per_image[DHF_PCK_NKINDS][DHF_PCK_MAX_ALPHAS];    /* mean over pairs of per-pair PCK */
} dhf_pck_stats;

typedef struct {
    int value;                   /* the attribute value */
    dhf_pck_stats stats;
} dhf_pck_bucket;

typedef struct {
    int n_alphas;
    double alphas[DHF_PCK_MAX_ALPHAS];
    dhf_pck_stats overall;
    int n_categories;
    char **category_names;       /* owned copies */
    dhf_pck_stats *per_category; /* [n_categories]; categories without keypoints have n_keypoints 0 */
    /* Mean over categories that have keypoints of their per-category value,
     * for both averagings: [0] = of per_keypoint, [1] = of per_image. */
    double category_mean[2][DHF_PCK_NKINDS][DHF_PCK_MAX_ALPHAS];
    int n_buckets[DHF_PCK_NATTRS];        /* 0 = attribute absent from the data */
    dhf_pck_bucket *buckets[DHF_PCK_NATTRS]; /* sorted by value */
} dhf_pck_report;

/* Validates alphas (1..DHF_PCK_MAX_ALPHAS values in (0, 1], strictly increasing
 * not required but no duplicates). */
int dhf_pck_check_alphas(const double *alphas, int n_alphas);

/* Computes every average. kps[i].pair must be < n_pairs and kps[i].category <
 * n_categories; a pair's keypoints must agree on category and attributes.
 * Pairs are summed in index order, so the same keypoints give bit-identical
 * results however they were produced. */
int dhf_pck_compute(const dhf_pck_kp *kps, size_t n_kps, int n_pairs,
                    const char *const *category_names, int n_categories,
                    const double *alphas, int n_alphas, dhf_pck_report *out);
void dhf_pck_report_free(dhf_pck_report *r);

/* The α as a JSON object key: shortest text that reads back to the same double
 * ("0.1", "0.05"). buf >= 32 bytes. */
const char *dhf_pck_alpha_key(double alpha, char *buf, size_t n);

/* Adds a number that reads back bit-identically (cJSON's own printer may drop
 * the last ulp); NaN and infinities become null. Returns the item or NULL. */
cJSON *dhf_json_add_exact(cJSON *obj, const char *key, double v);
cJSON *dhf_json_exact_number(double v);

/* {"alphas": [...], "n_pairs", "n_keypoints", "overall": {...},
 *  "per_category": {...}, "category_mean": {...}, "breakdowns": {...}} */
cJSON *dhf_pck_report_to_json(const dhf_pck_report *r);

/* Markdown: a per-category table (PCK@α img/bbox, pooled per keypoint and per
 * image), the headline row (PCK@headline_alpha pooled per keypoint) and the
 * breakdowns. */
int dhf_pck_report_write_md(const dhf_pck_report *r, double headline_alpha, FILE *f);

/* Index of alpha in r->alphas (exact match), or -1. */
int dhf_pck_alpha_index(const dhf_pck_report *r, double alpha);

#endif
