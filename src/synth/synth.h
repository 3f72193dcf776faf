/* synth.h — `dhf synth`: a small synthetic benchmark written in the exact
 * on-disk formats of SPair-71k and CUB-200-2011, deterministic from a seed
 * (same seed and options -> byte-identical files, whatever the thread count).
 *
 *   <out>/SPair-71k/JPEGImages/<category>/<name>.jpg
 *                  /ImageAnnotation/<category>/<name>.json
 *                  /PairAnnotation/{trn,val,test}/<pair_id>-<src>-<trg>:<category>.json
 *                  /Layout/large/{trn,val,test}.txt
 *                  /dhf_synth.json          (provenance, keypoint names, conventions)
 *   <out>/CUB_200_2011/images/<NNN.Class>/<file>.jpg, images.txt,
 *                  image_class_labels.txt, classes.txt, train_test_split.txt,
 *                  bounding_boxes.txt, parts/parts.txt, parts/part_locs.txt,
 *                  dhf_synth.json
 *
 * Conventions (also written into dhf_synth.json):
 * - Pixel centres are at integer coordinates, 0-based; keypoints are the exact
 *   projected template points rounded to the nearest pixel (SPair and CUB store
 *   integer pixels); boxes are the object's silhouette, [x1, y1, x2, y2]
 *   inclusive (CUB: x1 y1 w h with w = x2 - x1).
 * - Keypoint ids are semantic and never swap: an object facing left is the 3-D
 *   template turned round, so its "right eye" stays id "1" and is simply not
 *   visible when on the far side (as SPair keeps semantic ids).
 * - Pair attributes: viewpoint_variation from the azimuth-bin (8 x 45 deg)
 *   difference d: 0 if d = 0, 1 if d <= 2, else 2; scale_variation from the
 *   ratio r >= 1 of sqrt(box areas): 0 if r < 1.5, 1 if r < 2, else 2;
 *   truncation and occlusion: 0 none, 1 source, 2 target, 3 both (SPair's
 *   coding); mirror = 1 when one object faces image-left and the other
 *   image-right.
 * - Splits are image-disjoint per category (trn / val / test images never
 *   meet in a pair); pairs are ordered, same-category, with >= 1 keypoint
 *   visible in both, and carry only those keypoints. */
#ifndef DHF_SYNTH_H
#define DHF_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "synth/synth_scene.h"

#define DHF_SYNTH_MAX_CATEGORIES 32

typedef struct {
    uint64_t seed;
    /* SPair categories; n_categories = 0 means the default six. */
    const char *categories[DHF_SYNTH_MAX_CATEGORIES];
    int n_categories;
    int images_per_category; /* >= 6 (each split needs >= 2 images) */
    int pairs_per_category;  /* cap per split and category */
    int cub_classes;         /* >= 1 */
    int cub_images_per_class; /* >= 2 */
    dhf_synth_scene_opts scene;
    int jpeg_quality; /* 1..100 */
    int threads;      /* >= 1 */
    bool write_spair, write_cub;
    bool quiet;       /* no progress bar */
} dhf_synth_options;

void dhf_synth_defaults(dhf_synth_options *o);
/* Checks ranges and category names; the message names the option. */
int dhf_synth_validate(const dhf_synth_options *o);

typedef struct {
    int spair_images, spair_pairs[3]; /* trn, val, test */
    int cub_images, cub_classes;
} dhf_synth_summary;

/* Writes <out_dir>/SPair-71k and/or <out_dir>/CUB_200_2011. An existing target
 * folder is replaced only when it holds a dhf_synth.json (made by this
 * command); any other non-empty folder is left alone and reported. */
int dhf_synth_run(const char *out_dir, const dhf_synth_options *o, dhf_synth_summary *summary);

/* The two writers, for a given dataset root (the SPair-71k / CUB_200_2011
 * folder itself, created if missing, assumed empty of stale files). */
int dhf_synth_write_spair(const char *root, const dhf_synth_options *o, dhf_synth_summary *summary);
int dhf_synth_write_cub(const char *root, const dhf_synth_options *o, dhf_synth_summary *summary);

#endif
