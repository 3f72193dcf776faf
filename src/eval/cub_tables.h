/* cub_tables.h — (private to the CUB reader and `dhf data check`) the
 * CUB-200-2011 annotation files parsed into per-image records, before any
 * pairing: images.txt, image_class_labels.txt, train_test_split.txt,
 * bounding_boxes.txt, parts/parts.txt, parts/part_locs.txt. */
#ifndef DHF_EVAL_CUB_TABLES_H
#define DHF_EVAL_CUB_TABLES_H

#include <stddef.h>

#define DHF_CUB_MAX_PARTS 64

typedef struct {
    int id;                  /* images.txt id */
    char *rel;               /* path relative to images/, e.g. "001.Black_footed_Albatross/x.jpg" */
    int cls;                 /* index into tables.classes */
    int class_id;            /* image_class_labels.txt value */
    int is_train;            /* train_test_split.txt: 1 train, 0 test */
    double bbox[4];          /* [x, y, x + w, y + h] */
    double *parts;           /* [n_parts][2] (x, y) */
    unsigned char *visible;  /* [n_parts] */
} dhf_cub_image;

typedef struct {
    char root[4096];
    dhf_cub_image *images;   /* images.txt order */
    size_t n_images;
    int *index_of_id;        /* [max_id + 1]: image index or -1 */
    int *by_path;            /* image indices sorted by rel, for path look-ups */
    int max_id;
    char **classes;          /* class folder names, sorted; [n_classes] */
    int n_classes;
    int n_parts;
    int part_ids[DHF_CUB_MAX_PARTS];   /* parts.txt ids, ascending */
    char *part_names[DHF_CUB_MAX_PARTS];
    size_t n_part_locs;      /* rows read from part_locs.txt */
} dhf_cub_tables;

/* Reads and cross-checks every file (each id known, each image has a class,
 * a split flag and a box; visible flags 0/1). Errors name file:line. */
int dhf_cub_read_tables(const char *root, dhf_cub_tables *t);
void dhf_cub_tables_free(dhf_cub_tables *t);
/* Image index for an images.txt id or path, or -1. */
int dhf_cub_find_image(const dhf_cub_tables *t, const char *token);

#endif
