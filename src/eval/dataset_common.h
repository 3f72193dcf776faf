/* dataset_internal.h — (private to the dataset readers) shared plumbing:
 * growing the pair array, owned strings, category folders, and the checks
 * every reader applies the same way (box inside the image). */
#ifndef DHF_EVAL_DATASET_COMMON_H
#define DHF_EVAL_DATASET_COMMON_H

#include <stdbool.h>

#include "eval/dataset.h"

/* Pixels of slack for "box inside the image": VOC-derived boxes are 1-based,
 * so x2 == W + 1 can occur in correct annotations. */
#define DHF_BOX_SLACK 1.0

/* Moves *p (shallow) onto the end of ds->pairs; *p is zeroed. */
int dhf_ds_append(dhf_dataset *ds, size_t *cap, dhf_pair *p);
/* Sorted names of the sub-directories of dir (hidden ones skipped). */
int dhf_ds_list_subdirs(const char *dir, char ***names, int *n);
/* Sorted names of dir's sub-folders (want_dirs) or other entries, hidden ones
 * skipped, filtered by keep() when given; free with dhf_ds_free_strings. */
int dhf_ds_list_dir(const char *dir, bool want_dirs, int (*keep)(const char *), char ***names,
                    int *n);
/* strcmp for qsort over char* arrays. */
int dhf_ds_cmp_str(const void *a, const void *b);
void dhf_ds_free_strings(char **v, int n);
/* Index of name in v[0..n), or -1 (linear; category lists are short). */
int dhf_ds_category_known(char *const *v, int n, const char *name);
/* Copies a sorted category list into ds. */
int dhf_ds_set_categories(dhf_dataset *ds, char *const *names, int n);
/* Error unless box (x1,y1,x2,y2) lies in [0, W] x [0, H] up to DHF_BOX_SLACK. */
int dhf_ds_check_box(const char *where, const char *field, const double box[4],
                     const int size[2]);
/* Every point of pts[n][2] inside the size[0] x size[1] image (the box tolerance):
 * else an error naming the field, the point and the image size. */
int dhf_ds_check_points(const char *where, const char *field, const double *pts, int n,
                        const int size[2]);
/* Allocates the per-keypoint arrays of p for n keypoints (visible = 1). */
int dhf_ds_alloc_kps(dhf_pair *p, int n);
/* Copies a bounded string (ids, names) with an error on overflow. */
int dhf_ds_copy(char *dst, size_t cap, const char *src, const char *what);
/* Non-blank lines of a text file, trimmed of surrounding whitespace/CR. */
int dhf_ds_read_lines(const char *path, char ***lines, size_t *n);
/* Sorts the dataset's pairs by id (strcmp). */
void dhf_ds_sort_by_id(dhf_dataset *ds);

#endif
