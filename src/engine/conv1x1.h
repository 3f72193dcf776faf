/* conv1x1.h — 1x1 convolutions (matrix products over the channels at every pixel) on
 * channel-blocked activations (blocked.h), written for AVX-512: y = W x and the
 * backward-data dx = W^T dy, with the per-channel sums GroupNorm needs computed on the
 * outputs while they are still in registers.
 *
 * Why not oneDNN's jit_1x1 for these: measured on the 2-core AVX-512 machine (N = 22,
 * 64x64; bench_conv1x1, BENCHMARKS.md), oneDNN's 1x1 runs 384 -> 96 channels (conv3's
 * backward-data) at ~310 GFLOP/s and 320 -> 480 (conv1 + shortcut) at ~417, against
 * ~438 and ~494 for the tiling here. The kernel: 3 output blocks x 8 pixels of
 * accumulators (24 zmm), reduction over the input channels in chunks of 128 so the
 * chunk's weights stay in L1 while 256 pixels of input stay in L2.
 *
 * Every output element is a sum over its input channels in a fixed order, whatever the
 * thread count; the per-channel sums are reduced over fixed pixel blocks in a fixed
 * order: results are bit-reproducible from run to run (and across thread counts).
 * Not thread-safe per object. */
#ifndef DHF_ENGINE_CONV1X1_H
#define DHF_ENGINE_CONV1X1_H

#include <stdbool.h>

typedef struct dhf_c1x1 dhf_c1x1; /* opaque */

/* true when this build has the kernels and the CPU runs them (AVX-512F) */
bool dhf_c1x1_supported(void);

/* N images of H x W pixels, C in channels, O out channels (any counts; the blocked
 * layout pads them to multiples of 16). Fails (dhf_err_set) when unsupported or out of
 * memory. */
int dhf_c1x1_create(dhf_c1x1 **out, int N, int C, int O, int H, int W);
void dhf_c1x1_free(dhf_c1x1 *c); /* NULL ok */

/* y [N, O, H, W] = W x, x [N, C, H, W] (blocked, zero padding channels), w OIHW [O, C]
 * float32. Activation buffers must be 64-byte aligned (a pixel's block is one line). sum, sumsq: NULL, or [N * O] doubles written with the sum and the sum of
 * squares over the pixels of each (sample, channel) of y. Padding channels of y are
 * written as zeros. */
int dhf_c1x1_forward(dhf_c1x1 *c, const float *x, const float *w, float *y, double *sum,
                     double *sumsq);

/* dx [N, C, H, W] = W^T dy, dy [N, O, H, W] (blocked, zero padding channels). */
int dhf_c1x1_backward_data(dhf_c1x1 *c, const float *dy, const float *w, float *dx);

#endif
