/* dataset_json.h — (private to the dataset readers) strict access to annotation
 * JSON: parse a file with a line number on syntax errors, and read required or
 * optional fields with messages of the form
 *     "<where>: field '<name>': expected <what>, got <what>"
 * where <where> is the file (plus "pair N" for list elements). */
#ifndef DHF_EVAL_DATASET_JSON_H
#define DHF_EVAL_DATASET_JSON_H

#include <cjson/cJSON.h>

/* Parses the whole file; error names the path and the line of a syntax error. */
int dhf_dj_parse_file(const char *path, cJSON **out);

/* Required fields (missing = error). */
int dhf_dj_string(const cJSON *obj, const char *where, const char *field, const char **out);
int dhf_dj_int(const cJSON *obj, const char *where, const char *field, int *out);
/* [x1, y1, x2, y2] numbers with x1 <= x2, y1 <= y2. */
int dhf_dj_box(const cJSON *obj, const char *where, const char *field, double out[4]);
/* [W, H] or [W, H, C]: positive integers. */
int dhf_dj_imsize(const cJSON *obj, const char *where, const char *field, int out[2]);
/* [[x, y], ...]: *xy is malloc'd [n][2] (NULL when n == 0). */
int dhf_dj_points(const cJSON *obj, const char *where, const char *field, double **xy, int *n);
/* A list of integers, each a JSON number or a string holding an integer
 * (SPair writes kps_ids as strings). *ids malloc'd. */
int dhf_dj_int_list(const cJSON *obj, const char *where, const char *field, int **ids, int *n);

/* Optional fields: absent or null = *out untouched, return 0; present with the
 * wrong type = error. */
int dhf_dj_opt_int(const cJSON *obj, const char *where, const char *field, int *out);
int dhf_dj_opt_string(const cJSON *obj, const char *where, const char *field, char *out,
                      size_t cap);

/* "a string", "a number", "an array", ... for messages. */
const char *dhf_dj_type_name(const cJSON *item);

#endif
