/* fuzz_predictions.c — predictions.jsonl as dhf pck reads it (eval/predictions.h) on
 * arbitrary bytes, then the PCK of what loaded. */
#include "fuzz_util.h"

#include "eval/pck.h"
#include "eval/predictions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("predictions.jsonl", data, size);
    dhf_predictions p;
    memset(&p, 0, sizeof p);
    if (dhf_predictions_load(path, &p) == 0) {
        double alpha = 0.1;
        dhf_pck_report r;
        if (dhf_pck_compute(p.kps, p.n_kps, p.n_pairs, (const char *const *)p.categories,
                            p.n_categories, &alpha, 1, &r) == 0)
            dhf_pck_report_free(&r);
        dhf_predictions_free(&p);
    }
    return 0;
}
