/* pair_drawing.h — two images side by side with points on both, as PNG: the dense
 * correspondences of `dhf match` (source points coloured by their position, each
 * match in the same colour, as the paper's figures show them) and one evaluated pair
 * of `dhf draw` (source keypoints, predicted targets as dots, true targets as rings,
 * joined by a line green when within the PCK threshold, red otherwise). */
#ifndef DHF_EXPERIMENT_PAIR_DRAWING_H
#define DHF_EXPERIMENT_PAIR_DRAWING_H

#include "core/image.h"

typedef struct {
    const dhf_image *a, *b;      /* left (source) and right (target) images */
    int n;
    const double *a_xy;          /* n x (x, y) in a's original pixels */
    const double *b_xy;          /* n x (x, y) in b's: the matches / predictions */
    const double *b_true_xy;     /* NULL, or the true targets (predictions mode) */
    const int *correct;          /* with b_true_xy: 1 within the threshold, 0 not */
    const char *title;           /* one line above the images (may be NULL) */
} dhf_pair_drawing;

/* Renders to png_path (written atomically). Each image is scaled to the same
 * height (at least 256 px). */
int dhf_draw_pair(const dhf_pair_drawing *d, const char *png_path);

#endif
