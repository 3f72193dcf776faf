/* pt_weights.c — a torch.save state_dict as an in-memory safetensors file
 * (pt_weights.h): its tensors' views gathered in their own dtype behind a header. */
#include "extract/pt_weights.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/pickle.h"
#include "shim/torch_shim.h"

int dhf_pt_weights_open(const char *path, dhf_st_file **out)
{
    *out = NULL;
    dhf_pt_archive *a = NULL;
    dhf_pv *root = NULL;
    void *pkl = NULL;
    size_t pkl_n = 0;
    cJSON *hdr = NULL;
    char *htext = NULL;
    uint8_t *buf = NULL;
    int rc = -1;
    if (dhf_pt_open(path, &a) != DHF_OK)
        return dhf_err_set("%s: not a torch.save zip archive (the legacy pickle format is "
                           "not read: load it in PyTorch and save it again): %s", path,
                           dhf_last_error());
    if (dhf_pt_read(a, "data.pkl", &pkl, &pkl_n) != DHF_OK) {
        dhf_err_set("%s: data.pkl: %s", path, dhf_last_error());
        goto done;
    }
    char what[4200];
    snprintf(what, sizeof what, "%s: data.pkl", path);
    if (dhf_pickle_load(pkl, pkl_n, what, &root))
        goto done;
    if (root->type != DHF_PV_DICT) {
        dhf_err_set("%s: expected a state_dict (a dict of tensors), got %s", path,
                    dhf_pv_type_name(root->type));
        goto done;
    }
    /* the header and the data size */
    hdr = cJSON_CreateObject();
    uint64_t total = 0;
    for (size_t k = 0; hdr && k < root->len; k++) {
        const dhf_pv *key = root->items[k], *t = root->values[k];
        int dt;
        if (key->type != DHF_PV_STR || t->type != DHF_PV_TENSOR ||
            dhf_pv_dtype_to_st(t->dtype, &dt)) {
            dhf_err_set("%s: entry '%s': expected a tensor of a safetensors dtype, got %s",
                        path, key->type == DHF_PV_STR ? key->s : "(not a string)",
                        t->type == DHF_PV_TENSOR ? dhf_pv_dtype_name(t->dtype)
                                                 : dhf_pv_type_name(t->type));
            goto done;
        }
        const uint64_t bytes = (uint64_t)dhf_pv_numel(t) * dhf_dtype_bytes_pv(t->dtype);
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        for (int d = 0; shape && d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->size[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)total));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(total + bytes)));
        cJSON_AddStringToObject(e, "dtype", dhf_st_dtype_name((dhf_st_dtype)dt));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToObject(e, "data_offsets", offs);
        cJSON_AddItemToObject(hdr, key->s, e);
        total += bytes;
    }
    htext = hdr ? cJSON_PrintUnformatted(hdr) : NULL;
    if (!htext) {
        dhf_err_set("%s: out of memory", path);
        goto done;
    }
    size_t hlen = strlen(htext);
    const size_t padded = (hlen + 7) / 8 * 8;          /* the spec's 8-byte alignment */
    const size_t len = 8 + padded + (size_t)total;
    buf = malloc(len ? len : 1);
    if (!buf) {
        dhf_err_set("%s: out of memory for %zu bytes of weights", path, len);
        goto done;
    }
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    memcpy(buf + 8, htext, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    uint8_t *data = buf + 8 + padded;
    for (size_t k = 0; k < root->len; k++) {
        const dhf_pv *t = root->values[k];
        char rec[96];
        snprintf(rec, sizeof rec, "data/%s", t->storage_key);
        void *st = NULL;
        size_t st_n = 0;
        if (dhf_pt_read(a, rec, &st, &st_n) != DHF_OK) {
            dhf_err_set("%s: '%s': storage record %s: %s", path, root->items[k]->s, rec,
                        dhf_last_error());
            goto done;
        }
        const size_t eb = dhf_dtype_bytes_pv(t->dtype);
        if (st_n != (size_t)t->storage_numel * eb) {
            free(st);
            dhf_err_set("%s: '%s': storage %s holds %zu bytes, expected %lld: truncated "
                        "archive?", path, root->items[k]->s, rec, st_n,
                        (long long)t->storage_numel * (long long)eb);
            goto done;
        }
        dhf_pv_gather(t, st, data);
        data += (size_t)dhf_pv_numel(t) * eb;
        free(st);
    }
    rc = dhf_st_open_memory(path, buf, len, out);
    buf = NULL;                                        /* owned by the file now */
done:
    free(buf);
    free(htext);
    cJSON_Delete(hdr);
    free(pkl);
    dhf_pv_free(root);
    dhf_pt_close(a);
    return rc;
}
