/* data_check.h — `dhf data check`: structural verification of a SPair-71k or
 * CUB-200-2011 folder (every annotation parses, every referenced image exists
 * and decodes at the annotated size, boxes lie inside images), a count table
 * per split and category, and optionally the official numbers. Problems are
 * collected (not first-error-only) and printed one per line. */
#ifndef DHF_EVAL_DATA_CHECK_H
#define DHF_EVAL_DATA_CHECK_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    bool strict_official;  /* also require the published counts */
    bool full_table;       /* CUB: one row per class even for 200 classes */
    FILE *out;             /* tables and notes (stdout when NULL) */
    FILE *err;             /* problems (stderr when NULL) */
} dhf_data_check_options;

/* Each returns 0 when the folder passes, -1 when problems were found (message:
 * "<root>: N problems", details already printed) or it could not be read. */
int dhf_data_check_spair(const char *root, const dhf_data_check_options *opt);
int dhf_data_check_cub(const char *root, const dhf_data_check_options *opt);

/* Finds what to check under dir: dir itself when it is a SPair-71k folder
 * (JPEGImages/) or a CUB folder (images.txt), else each immediate sub-folder
 * that is one (e.g. data/ holding SPair-71k/ and CUB_200_2011/). kind = NULL
 * or "auto", "spair", "cub" restricts the search. Error if nothing matches. */
int dhf_data_check_dir(const char *dir, const char *kind, const dhf_data_check_options *opt);

#endif
