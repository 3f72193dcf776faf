/* gn_fused.h — GroupNorm without materialising (or keeping for the backward) the
 * full-resolution tensor it normalises, for the fast order of the bottleneck. Both are
 * exact rewrites (equal in real arithmetic, float32 rounding apart) built from shim
 * ops, so autograd differentiates them:
 *
 *  1. GN of an upsampled map. U = bilinear resize to R x R (rows of weights summing to
 *     1) commutes with subtracting a constant and with per-channel affine maps, so
 *        GN(U z) = U( gamma * (z - mu) * rstd + beta ),
 *     where mu and var are the statistics of U z, obtained from z at native
 *     resolution: mean(U z) = <colsum(U), z> / R^2 and ||U v||^2 = tr(v^T My v Mx)
 *     with My = Uy^T Uy, Mx = Ux^T Ux (U = Uy (x) Ux is separable).
 *  2. GN of a 1x1 convolution's output: the group statistics of W x follow from the
 *     per-sample mean m and second-moment matrix S = x x^T / HW of x, and the
 *     normalisation folds into a per-sample 1x1 convolution
 *        GN(W x) = (scale (.) W) x + (beta - scale * mu),  scale = gamma * rstd.
 *
 * Memory: autograd keeps only native-resolution tensors for (1) and the input x for
 * (2), instead of the R x R (resp. output-sized) GN input.
 *
 * `mult` (NULL or [N], may require grad): the result of sample n is multiplied by
 * mult[n], folded into the per-sample affine map at no extra pass over the data. The
 * fast order uses it for the (positive) mixing weights: w * relu(a + b) equals
 * relu(w a + w b) for w >= 0. */
#ifndef DHF_TRAIN_GN_FUSED_H
#define DHF_TRAIN_GN_FUSED_H

#include <stdint.h>

#include "shim/torch_shim.h"

/* z [N, C, h, w] -> *out NEW [N, C, h, w] with resize_R(*out) == GN(resize_R(z))
 * (bilinear, align_corners false). When h == w == R this is plain GN. */
int dhf_gn_of_upsampled(dhf_tensor z, int64_t out_res, int groups, dhf_tensor gamma,
                        dhf_tensor beta, double eps, dhf_tensor mult, dhf_tensor *out);

/* Per-sample moments of x [N, C, H, W]: *mean NEW [N, C] and *second NEW [N, C, C]
 * (x x^T / HW), shared by several dhf_conv1x1_gn on the same input. */
int dhf_input_moments(dhf_tensor x, dhf_tensor *mean, dhf_tensor *second);

/* GN(conv1x1(x, w)) with w [Cout, Cin, 1, 1] (no bias); x [N, Cin, H, W] ->
 * *out NEW [N, Cout, H, W]. mean/second: x's moments from dhf_input_moments, or both
 * NULL to compute them here. The second moments are not centred: var = E[y^2] -
 * E[y]^2 in float32 loses ~log10(E[y^2]/var) digits (tested with means 5x the
 * spread). */
int dhf_conv1x1_gn(dhf_tensor x, dhf_tensor w, int groups, dhf_tensor gamma,
                   dhf_tensor beta, double eps, dhf_tensor mean, dhf_tensor second,
                   dhf_tensor mult, dhf_tensor *out);

#endif
