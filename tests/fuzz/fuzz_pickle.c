/* fuzz_pickle.c — the restricted torch.save pickle reader behind dhf import and .pt /
 * .bin weights (core/pickle.h) on arbitrary bytes; what loads is dumped again. */
#include "fuzz_util.h"

#include "core/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dhf_pv *v = NULL;
    if (dhf_pickle_load(data, size, "fuzz", &v) == 0) {
        void *out = NULL;
        size_t n = 0;
        if (dhf_pickle_dump(v, &out, &n) == 0)
            free(out);
        dhf_pv_free(v);
    }
    return 0;
}
