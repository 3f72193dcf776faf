/* shard.h — `--shard K/N`: extraction split over N jobs. Shard K (0-based, 0 <= K < N)
 * takes the images at positions p with p % N == K of the image list, and writes its
 * own cache file, <stem>.shardKofN<ext>, joined later by `dhf cache merge`. */
#ifndef DHF_CACHE_SHARD_H
#define DHF_CACHE_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int index;   /* K */
    int count;   /* N; 1 = no sharding */
} dhf_shard;

/* "K/N" with 0 <= K < N <= 100000. */
int dhf_shard_parse(const char *s, dhf_shard *out);
bool dhf_shard_selects(dhf_shard s, int64_t position);
/* cache_path unchanged when s.count == 1; "a/feats.h5" -> "a/feats.shard2of8.h5". */
int dhf_shard_cache_path(const char *cache_path, dhf_shard s, char *out, size_t n);

#endif
