/* pt_write.c — test_safetensors_to_bin (pt_write.h). */
#include "common/pt_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/pickle.h"
#include "core/safetensors.h"
#include "shim/torch_shim.h"

int test_safetensors_to_bin(const char *st_path, const char *bin_path)
{
    dhf_st_file *st = NULL;
    if (dhf_st_open(st_path, &st))
        return -1;
    const int n = dhf_st_count(st);
    dhf_pv *sd = dhf_pv_dict(true);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    const void **data = calloc((size_t)n + 1, sizeof *data);
    size_t *sizes = calloc((size_t)n + 1, sizeof *sizes);
    char (*keys)[32] = calloc((size_t)n + 1, sizeof *keys);
    void *pkl = NULL;
    size_t pkl_n = 0;
    int rc = -1;
    if (!sd || !names || !data || !sizes || !keys) {
        dhf_err_set("out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const dhf_st_info *t = dhf_st_at(st, i);
        dhf_pv_dtype dt;
        if (dhf_pv_dtype_from_st((int)t->dtype, &dt)) {
            dhf_err_set("%s: %s: no storage dtype", st_path, t->name);
            goto done;
        }
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        snprintf(keys[i + 1], sizeof keys[0], "data/%d", i);
        names[i + 1] = keys[i + 1];
        data[i + 1] = t->data;
        sizes[i + 1] = t->nbytes;
        if (dhf_pv_set(sd, dhf_pv_str(t->name), dhf_pv_tensor(key, dt, t->shape, t->ndim))) {
            dhf_err_set("out of memory");
            goto done;
        }
    }
    if (dhf_pickle_dump(sd, &pkl, &pkl_n))
        goto done;
    names[0] = "data.pkl";
    data[0] = pkl;
    sizes[0] = pkl_n;
    if (dhf_pt_write(bin_path, names, data, sizes, n + 1) != DHF_OK) {
        dhf_err_set("%s: %s", bin_path, dhf_last_error());
        goto done;
    }
    rc = 0;
done:
    free(pkl);
    free(keys);
    free(sizes);
    free(data);
    free(names);
    dhf_pv_free(sd);
    dhf_st_close(st);
    return rc;
}
