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

/* CRC-32 (IEEE 802.3, the zlib / PNG polynomial, reflected 0xEDB88320): the checksum
 * checkpoints carry per tensor. Start with crc = 0; chunks may be fed in order. */
static inline uint32_t dhf_crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    static int made;
    if (!made) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        made = 1;
    }
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#endif
