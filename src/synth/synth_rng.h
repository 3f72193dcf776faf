/* synth_rng.h — the synthetic benchmark's own random numbers: splitmix64 for
 * seeding and hashing, xoshiro256** for streams. Header-only so every synth file
 * shares one definition. rand() is never used: the same seed must give the same
 * bytes on every libc, and every image gets its own stream (derived by hashing
 * the seed with the image's identity) so results do not depend on thread count
 * or on which other categories were generated. */
#ifndef DHF_EVAL_SYNTH_RNG_H
#define DHF_EVAL_SYNTH_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} dhf_rng;

/* splitmix64 finaliser: a stateless 64-bit mixer (good avalanche), used to
 * derive seeds and for hash-based noise. */
static inline uint64_t dhf_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* FNV-1a of a string, mixed: stable identity for category and class names. */
static inline uint64_t dhf_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return dhf_mix64(h);
}

static inline uint64_t dhf_hash_combine(uint64_t a, uint64_t b)
{
    return dhf_mix64(a ^ (dhf_mix64(b) + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2)));
}

static inline void dhf_rng_seed(dhf_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

static inline uint64_t dhf_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static inline uint64_t dhf_rng_u64(dhf_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = dhf_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = dhf_rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double dhf_rng_unit(dhf_rng *r)
{
    return (double)(dhf_rng_u64(r) >> 11) * 0x1.0p-53;
}

static inline double dhf_rng_range(dhf_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * dhf_rng_unit(r);
}

/* Uniform integer in [0, n); n > 0. The modulo bias is below 2^-32 for the
 * small n used here and, unlike rejection, costs a fixed number of draws. */
static inline int dhf_rng_below(dhf_rng *r, int n)
{
    return (int)((dhf_rng_u64(r) >> 32) % (uint64_t)n);
}

/* True with probability p. */
static inline int dhf_rng_chance(dhf_rng *r, double p)
{
    return dhf_rng_unit(r) < p;
}

#endif
