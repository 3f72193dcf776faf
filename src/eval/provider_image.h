/* provider_image.h — the image-based descriptor provider: descriptors computed
 * directly from pixels, no model, so the whole evaluation runs end to end on
 * any machine. Per cell of an R × R grid over the load frame (R =
 * output_resolution):
 *   "image" / "image:rgb"  [r, g, b, u, v, 1]            (6 channels)
 *   "image:patch"          the 3×3 neighbourhood of cells, each [r, g, b, u, v, 1] (54 channels)
 * r, g, b: the cell's mean colour standardised per image and channel
 * ((value - mean) / std over the image); u, v: the cell centre in [-1, 1] of
 * the original image; the constant 1 keeps cosine similarity well-behaved near
 * the origin. Padding cells (resize "pad") are all-zero. A baseline, not a
 * method: it matches by colour and by position. */
#ifndef DHF_EVAL_PROVIDER_IMAGE_H
#define DHF_EVAL_PROVIDER_IMAGE_H

#include "eval/provider.h"

/* args->arg: NULL, "rgb" or "patch"; the grid side comes from
 * args->cfg->output_resolution (64 when cfg is NULL). */
int dhf_provider_image_open(const dhf_provider_args *args, dhf_provider *out);

/* The descriptors of one image (what describe() computes), for tests:
 * grid R, frame geometry from (width, height, resize). */
int dhf_image_descriptors(const dhf_image *img, int grid, dhf_resize_policy resize, bool patch,
                          dhf_descriptors *out);

#endif
