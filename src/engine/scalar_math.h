/* scalar_math.h — the per-element helpers the engine's vectorised loops share: bfloat16
 * <-> float32 (PyTorch's rounding) and an exp written so a loop over it vectorises
 * (no call, no branch, no lookup table). static inline: every caller inlines them into
 * its own DHF_HOT clones. */
#ifndef DHF_ENGINE_SCALAR_MATH_H
#define DHF_ENGINE_SCALAR_MATH_H

#include <stdint.h>
#include <string.h>

static inline float dhf_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* round to nearest even, as PyTorch's float -> bfloat16 (NaN stays NaN) */
static inline uint16_t dhf_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* exp(x): Cody-Waite reduction by ln 2 and a degree-6 polynomial on [-ln2/2, ln2/2]
 * (within 2 ulp of expf), x clamped to [-87, 88] where 2^k stays a normal float; below
 * -87 the result is exp(-87) ~ 1.6e-38, not 0 (callers that need the underflow to 0
 * say so). */
static inline float dhf_expf_clamped(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float magic = 12582912.0f;   /* 1.5 * 2^23: adding it rounds to an integer */
    float k = (x * 1.44269504088896341f + magic) - magic;
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
