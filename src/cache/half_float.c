/* half_float.c — bit-exact float32 <-> float16 conversion (see half_float.h). */
#include "cache/half_float.h"

#include <string.h>

/* Bit patterns of float32 magnitudes that bound the float16 cases. */
#define F32_INF 0x7f800000u
#define F32_HALF_OVERFLOW 0x477ff000u  /* 65520: halfway between 65504 and 2^16 */
#define F32_HALF_MIN_NORMAL 0x38800000u /* 2^-14 */
#define F32_HALF_TIE_TO_ZERO 0x33000000u /* 2^-25: half of the smallest subnormal */

uint16_t dhf_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t mag = x & 0x7fffffffu;

    if (mag >= F32_INF) {
        if (mag == F32_INF)
            return sign | 0x7c00u;
        /* NaN: quiet bit set so a payload that lives only in the low bits stays NaN. */
        return (uint16_t)(sign | 0x7e00u | ((mag >> 13) & 0x3ffu));
    }
    if (mag >= F32_HALF_OVERFLOW)
        return sign | 0x7c00u;
    if (mag < F32_HALF_MIN_NORMAL) {
        if (mag < F32_HALF_TIE_TO_ZERO)
            return sign;
        /* Subnormal result: count units of 2^-24 in the 24-bit significand. */
        uint32_t exp = mag >> 23;                       /* 102..112 */
        uint32_t sig = (mag & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exp;                    /* 14..24 */
        uint32_t q = sig >> shift;
        uint32_t rem = sig & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (q & 1u)))
            q++;                                        /* may carry into 2^-14: right */
        return (uint16_t)(sign | q);
    }
    /* Normal: re-bias the exponent (127 -> 15) and drop 13 mantissa bits. A carry
     * out of the mantissa correctly bumps the exponent. */
    uint32_t h = (mag - 0x38000000u) >> 13;
    uint32_t rem = mag & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

static inline float bits_to_float(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static inline uint32_t float_to_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

/* Written with selects rather than a normalisation loop so that the bulk loop
 * vectorises (the trainer widens ~78 M values per SD image). */
static inline float half_to_float(uint16_t h)
{
    uint32_t mag = (uint32_t)(h & 0x7fffu) << 13;   /* exponent + mantissa in place */
    uint32_t exp = mag & 0x0f800000u;
    uint32_t normal = mag + 0x38000000u;             /* re-bias 15 -> 127 */
    /* Inf/NaN: exponent 31 -> 255, mantissa (NaN payload) kept. */
    uint32_t special = normal + 0x38000000u;
    /* Subnormal (and zero): 2^-14 * (1 + m/1024) - 2^-14 = m * 2^-24, exactly. */
    float sub = bits_to_float(normal + 0x00800000u) - bits_to_float(0x38800000u);
    uint32_t out = exp == 0x0f800000u ? special : (exp == 0 ? float_to_bits(sub) : normal);
    return bits_to_float(out | (uint32_t)(h & 0x8000u) << 16);
}

float dhf_half_to_float(uint16_t h)
{
    return half_to_float(h);
}

void dhf_half_from_float_n(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = dhf_half_from_float(src[i]);
}

void dhf_half_to_float_n(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = half_to_float(src[i]);
}
