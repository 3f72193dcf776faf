/* hash.h — FNV-1a 64 (not cryptographic): the fingerprints that identify a model's
 * weights and an image's features. Header-only. */
#ifndef DHF_CORE_HASH_H
#define DHF_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define DHF_FNV1A64_INIT 0xcbf29ce484222325ull

static inline void dhf_fnv1a64_update(uint64_t *h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *h ^= p[i];
        *h *= 0x100000001b3ull;
    }
}

#endif
