/* bilinear.h — bilinear resizing (align_corners false, no antialias, as PyTorch) as
 * explicit linear maps: the per-axis weight matrices, and an upsampling that runs as
 * two matrix products so that autograd's backward is two matrix products as well
 * (libtorch 1.13's CPU upsample backward is a scalar scatter loop, several times
 * slower than its forward). */
#ifndef DHF_TRAIN_BILINEAR_H
#define DHF_TRAIN_BILINEAR_H

#include <stdint.h>

#include "shim/torch_shim.h"

/* u[out][in]: row d holds the (at most two) weights of output index d; rows sum to 1. */
void dhf_bilinear_matrix(int64_t in, int64_t out, double *u);

/* x [N, C, h, w] -> *out NEW [N, C, R, R] equal to dhf_agg_resize (to float32 rounding),
 * computed as (x^T Uy^T)^T Ux^T per map: one small transposed copy of x, a product,
 * one transposed copy of the half-resized maps, a product. */
int dhf_bilinear_resize_mm(dhf_tensor x, int64_t out_res, dhf_tensor *out);

#endif
