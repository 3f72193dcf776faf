/* fuzz_safetensors.c — the safetensors reader (core/safetensors.h) on arbitrary bytes:
 * open from memory (header validation), then every tensor read as float32. */
#include "fuzz_util.h"

#include "core/error.h"
#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    dhf_st_file *f = NULL;
    if (dhf_st_open_memory("fuzz", buf, size, &f) != 0)   /* owns buf from here */
        return 0;
    for (int i = 0; i < dhf_st_count(f); i++) {
        const dhf_st_info *t = dhf_st_at(f, i);
        if (t->numel > 0 && t->numel < (1 << 20)) {
            float *x = malloc((size_t)t->numel * sizeof *x);
            if (x)
                dhf_st_read_f32(f, t->name, x, (size_t)t->numel);
            free(x);
        }
    }
    for (int i = 0; i < dhf_st_metadata_count(f); i++)
        (void)dhf_st_metadata_get(f, dhf_st_metadata_key(f, i));
    dhf_st_close(f);
    return 0;
}
