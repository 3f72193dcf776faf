/* groupnorm_nhwc.h — GroupNorm (affine), optionally followed by SiLU, in one kernel over
 * channels-last activations: x [N, P, C] (P pixels), G groups of C/G consecutive
 * channels, float32 or bfloat16 in and out, statistics always in float32 partial sums
 * gathered in double over two passes (the mean, then the squared deviations from it:
 * no E[x^2] - E[x]^2 cancellation for activations whose mean is large next to their
 * spread). y = silu((x - mean) * (rstd * gamma) + beta), centred before it is scaled
 * for the same reason, with PyTorch's biased variance and silu(v) = v / (1 + exp(-v)).
 * y may equal x. */
#ifndef DHF_ENGINE_GROUPNORM_NHWC_H
#define DHF_ENGINE_GROUPNORM_NHWC_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t N, P, C;
    int G;
    double eps;
    bool silu;
    bool bf16;      /* x, y, gamma, beta are bfloat16 (else float32) */
} dhf_gn_shape;

/* 0, or -1 with dhf_err_set (bad shape, out of memory). */
int dhf_gn_nhwc_forward(const dhf_gn_shape *s, const void *x, const void *gamma,
                        const void *beta, void *y);

#endif
