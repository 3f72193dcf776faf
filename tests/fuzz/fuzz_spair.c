/* fuzz_spair.c — SPair-71k's pair annotation JSON (eval/dataset.h:
 * dhf_spair_read_pair) and the paper's pair-list JSON (dhf_pairlist_load) on
 * arbitrary bytes: the same input is given to both readers. */
#include "fuzz_util.h"

#include "eval/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("000001-2008_000033-2008_000099:cat.json", data, size);
    dhf_pair p;
    memset(&p, 0, sizeof p);
    if (dhf_spair_read_pair(path, fuzz_dir(), NULL, 0, &p) == 0)
        dhf_pair_free(&p);
    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    dhf_pairlist_load(path, fuzz_dir(), &ds);
    dhf_dataset_free(&ds);
    return 0;
}
