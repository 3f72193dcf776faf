/* shard.c — parsing and applying `--shard K/N` (shard.h). */
#include "cache/shard.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dhf_shard_parse(const char *s, dhf_shard *out)
{
    char *end = NULL;
    long k = strtol(s, &end, 10);
    if (end == s || *end != '/')
        return dhf_err_set("--shard: expected K/N (0 <= K < N), got '%s'", s);
    const char *ns = end + 1;
    long n = strtol(ns, &end, 10);
    if (end == ns || *end || n < 1 || n > 100000 || k < 0 || k >= n)
        return dhf_err_set("--shard: expected K/N with 0 <= K < N <= 100000, got '%s'", s);
    out->index = (int)k;
    out->count = (int)n;
    return 0;
}

bool dhf_shard_selects(dhf_shard s, int64_t position)
{
    return s.count <= 1 || position % s.count == s.index;
}

int dhf_shard_cache_path(const char *cache_path, dhf_shard s, char *out, size_t n)
{
    if (s.count <= 1) {
        if ((size_t)snprintf(out, n, "%s", cache_path) >= n)
            return dhf_err_set("cache path too long: %s", cache_path);
        return 0;
    }
    const char *slash = strrchr(cache_path, '/');
    const char *dot = strrchr(cache_path, '.');
    if (dot && slash && dot < slash)
        dot = NULL;
    if (dot && dot == (slash ? slash + 1 : cache_path))
        dot = NULL;   /* ".h5" alone is a name, not an extension */
    size_t stem = dot ? (size_t)(dot - cache_path) : strlen(cache_path);
    int w = snprintf(out, n, "%.*s.shard%dof%d%s", (int)stem, cache_path, s.index, s.count,
                     dot ? dot : "");
    if (w < 0 || (size_t)w >= n)
        return dhf_err_set("cache path too long: %s", cache_path);
    return 0;
}
