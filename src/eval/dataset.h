/* dataset.h — the keypoint-pair datasets dhf evaluates and trains on, in one
 * in-memory form: SPair-71k (official layout), the paper code's pair-list JSON,
 * CUB-200-2011 (official files, pairs drawn per class), and the subsets taken
 * from them (whole split, explicit list, N per category with a seed). Readers
 * are strict on required fields and tolerant of extra ones; every validation
 * error names the file, the field and what was expected.
 *
 * Coordinates are (x, y) in the image's stored pixels (no EXIF rotation),
 * exactly as the annotation files give them; boxes are [x1, y1, x2, y2].
 *
 * Typical use (what `dhf eval` does):
 *     dhf_dataset ds;
 *     dhf_dataset_spec spec = {.dataset = "spair", .root = "data/SPair-71k",
 *                              .split = "test", .pairs_per_category = 20, .seed = 0};
 *     if (dhf_dataset_open(&spec, &ds) != 0 || dhf_dataset_resolve_images(&ds) != 0)
 *         -> report dhf_err_msg()
 *     ... ds.pairs[i] ...; ds.subset.{name,seed,count,hash} go into the report
 *     dhf_dataset_free(&ds);
 */
#ifndef DHF_EVAL_DATASET_H
#define DHF_EVAL_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- SPair-71k facts (used by `dhf data check --strict-official`) ---------- */

#define DHF_SPAIR_NUM_CATEGORIES 18
#define DHF_SPAIR_NUM_IMAGES 1800
#define DHF_SPAIR_TRN_PAIRS 53340
#define DHF_SPAIR_VAL_PAIRS 5384
#define DHF_SPAIR_TEST_PAIRS 12234
/* Alphabetical, as the dataset's JPEGImages folders. */
extern const char *const dhf_spair_categories[DHF_SPAIR_NUM_CATEGORIES];
/* Official test pairs per category, same order as dhf_spair_categories. */
extern const int dhf_spair_test_counts[DHF_SPAIR_NUM_CATEGORIES];
/* Index of `name` in dhf_spair_categories, or -1. */
int dhf_spair_category_index(const char *name);

#define DHF_CUB_NUM_IMAGES 11788
#define DHF_CUB_NUM_CLASSES 200
#define DHF_CUB_NUM_PARTS 15
#define DHF_CUB_NUM_TRAIN 5994
#define DHF_CUB_NUM_TEST 5794

/* ---- one pair ---------------------------------------------------------------- */

#define DHF_POSE_LEN 32

typedef struct {
    /* SPair: the annotation file stem "<id>-<src>-<trg>:<category>".
     * Pair list: "<n>-<src stem>-<trg stem>:<category>", n = 1-based position
     * in the list. CUB: "<src img_id>-<trg img_id>:<class folder>". Unique
     * within a dataset; the subset hash is computed over these. */
    char *id;
    char *category;
    /* "category/name.jpg": the image's identity across pairs (feature caches
     * key on it). */
    char *src_key, *trg_key;
    /* Where the file is: root joined with the dataset-relative path. */
    char *src_path, *trg_path;
    int src_size[2], trg_size[2];     /* [W, H]; 0 = unknown until resolved */
    double src_bbox[4], trg_bbox[4];  /* [x1, y1, x2, y2] */
    int n_kps;
    double *src_kps, *trg_kps;        /* [n_kps][2] (x, y) */
    unsigned char *visible;           /* [n_kps]; 1 = visible in both images */
    int *kp_ids;                      /* [n_kps]: SPair kps_ids, CUB part_id, list index */
    /* SPair attributes, -1 when the source has none. */
    int viewpoint_variation, scale_variation, truncation, occlusion, mirror;
    char src_pose[DHF_POSE_LEN], trg_pose[DHF_POSE_LEN]; /* "" when absent */
} dhf_pair;

/* ---- a set of pairs ---------------------------------------------------------- */

/* What was selected, recorded with every result. */
typedef struct {
    char name[256];         /* "full", "per-category-<N>", "list:<file name>" */
    char list_path[4096];   /* the explicit list file, "" otherwise */
    int per_category;       /* N for per-category draws, 0 otherwise */
    uint64_t seed;          /* the draw's seed (0 and meaningless unless per_category) */
    size_t count;           /* number of pairs */
    /* FNV-1a 64-bit over the pair ids sorted by strcmp, each followed by '\n';
     * 16 lowercase hex digits. */
    char hash[17];
} dhf_subset_info;

typedef struct {
    char name[32];          /* "spair-71k", "cub-200-2011"; "pairlist" from
                               dhf_pairlist_load alone (dhf_dataset_open says
                               "spair-71k" and the subset names the list) */
    char split[16];         /* "trn" | "val" | "test" (SPair), "train" | "test" (CUB) */
    char root[4096];        /* dataset folder as given */
    char image_root[4096];  /* folder image keys are relative to */
    dhf_pair *pairs;
    size_t n_pairs;
    /* Sorted by strcmp. SPair: the JPEGImages sub-folders (a pair list without
     * such folders: the categories its pairs use). CUB: the class folders. */
    char **categories;
    int n_categories;
    dhf_subset_info subset;
} dhf_dataset;

void dhf_pair_free(dhf_pair *p);
void dhf_dataset_free(dhf_dataset *ds);
/* Index of `name` in ds->categories, or -1. */
int dhf_dataset_category_index(const dhf_dataset *ds, const char *name);

/* ---- readers ----------------------------------------------------------------- */

/* SPair-71k official layout under `root` (the folder holding JPEGImages/,
 * PairAnnotation/, Layout/). The split's pairs are the lines of
 * Layout/large/<split>.txt, each read from PairAnnotation/<split>/<line>.json.
 * Checks required fields and types, src/trg keypoint counts, kps_ids length,
 * boxes inside the declared image sizes (1 px tolerance for VOC's 1-based
 * boxes), the category (a JPEGImages folder, and the one in the file name).
 * Does not touch the images (see dhf_dataset_resolve_images). subset = "full". */
int dhf_spair_load(const char *root, const char *split, dhf_dataset *ds);

/* One SPair pair annotation file; categories (may be NULL) is the allowed set.
 * id is the file stem. Paths are root/JPEGImages/<category>/<imname>. */
int dhf_spair_read_pair(const char *json_path, const char *root, char *const *categories,
                        int n_categories, dhf_pair *out);

/* The paper code's pair-list JSON: a list of objects with source_path,
 * target_path (relative to image_root, e.g. "dog/2008_007494.jpg"; a bare file
 * name is looked up as <category>/<name> when image_root has category folders),
 * source_points, target_points ([[x, y], ...]), category,
 * source_bounding_box, target_bounding_box ([l, t, r, b]); optional
 * source_pose, target_pose, mirror, viewpoint_variation. image_root is the
 * JPEGImages folder; it need not exist until images are resolved. Image sizes
 * are 0 until dhf_dataset_resolve_images. Pairs keep the file's order.
 * subset = "list:<file name>". */
int dhf_pairlist_load(const char *json_path, const char *image_root, dhf_dataset *ds);

/* CUB-200-2011 under `root` (images.txt, image_class_labels.txt,
 * train_test_split.txt, bounding_boxes.txt, parts/parts.txt,
 * parts/part_locs.txt, images/). Pairs: ordered pairs of distinct images of
 * the same class from `split` with >= 1 part visible in both; only parts
 * visible in both are kept. Boxes (x, y, w, h) become [x, y, x+w, y+h].
 * Selection (docs/EVAL.md, "CUB-200-2011 protocol"):
 *   pair_list != NULL/"": lines "<src> <trg>", each an image id or an
 *     images.txt path; blank lines and '#' comments ignored; order kept.
 *   else pairs_per_class > 0: per class, all candidate pairs sorted by
 *     (src id, trg id), N drawn by dhf_draw_indices(seed ^ fnv1a64(class
 *     folder name)) — the same rule as dhf_subset_per_category.
 *   else: every candidate pair. */
typedef struct {
    const char *split;        /* "test" (default when NULL) or "train" */
    int pairs_per_class;
    uint64_t seed;
    const char *pair_list;
} dhf_cub_options;
int dhf_cub_load(const char *root, const dhf_cub_options *opt, dhf_dataset *ds);

/* ---- subsets ----------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): state += 0x9e3779b97f4a7c15, then the
 * two xor-shift-multiply rounds. The whole draw is defined by this. */
uint64_t dhf_splitmix64(uint64_t *state);
/* Chooses k of n indices (k >= n: all): partial Fisher-Yates over 0..n-1 with
 * j = i + splitmix64() % (n - i), for i = 0..k-1; the k chosen are returned
 * sorted ascending in out[k]. */
void dhf_draw_indices(size_t n, size_t k, uint64_t seed, size_t *out);

/* Sets ds->subset to the whole set (name "full") and computes the hash. */
int dhf_subset_full(dhf_dataset *ds);
/* Keeps N pairs per category: within a category pairs are sorted by id, then
 * dhf_draw_indices(count, N, seed ^ fnv1a64(category)) picks them, so the
 * result does not depend on directory or file order. Categories with fewer
 * than N keep all. Output order: category (sorted), then id. */
int dhf_subset_per_category(dhf_dataset *ds, int n, uint64_t seed);
/* Keeps the pairs whose ids are listed in a text file (one id per line, as in
 * Layout/large/<split>.txt; blank lines and '#' comments ignored), in file order.
 * An id not in the dataset is an error naming the file and line. */
int dhf_subset_from_id_list(dhf_dataset *ds, const char *list_path);
/* Recomputes ds->subset.count and .hash from the current pairs. */
void dhf_subset_update_hash(dhf_dataset *ds);
uint64_t dhf_fnv1a64(const void *data, size_t len);

/* ---- images ------------------------------------------------------------------ */

/* Checks every referenced image: the file exists and decodes as JPEG/PNG
 * (header), its size equals the annotated one (SPair) or fills it in (pair
 * list, CUB), and both boxes lie inside their images. Each image is read once.
 * The error names the pair and the path. */
int dhf_dataset_resolve_images(dhf_dataset *ds);

/* ---- one entry point for the CLI and the config ------------------------------ */

typedef struct {
    const char *dataset;      /* "spair" | "cub" */
    const char *root;         /* SPair-71k or CUB_200_2011 folder */
    const char *split;        /* SPair: "trn" | "val" | "test"; CUB: "train" | "test" */
    /* Optional. SPair: a paper pair-list .json (images under root/JPEGImages)
     * or a text list of pair ids from `split`. CUB: a pair list (see above). */
    const char *pair_list;
    int pairs_per_category;   /* 0 = whole split / whole list */
    uint64_t seed;
} dhf_dataset_spec;
/* Loads and selects; does not touch images (call dhf_dataset_resolve_images). */
int dhf_dataset_open(const dhf_dataset_spec *spec, dhf_dataset *ds);

#endif
