/* model_identity.c — model folder name + UNet weights fingerprint in the cache's
 * form, and the fingerprint of the UNet weights it is made from (model_identity.h). */
#include "cache/model_identity.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dhf_model_unet_weights_path(const char *model_dir, char *out, size_t n)
{
    char dir[4096];
    if (dhf_path_join(dir, sizeof dir, model_dir, "unet") != 0)
        return -1;
    /* The same file the UNet loader and the fingerprint use. */
    return dhf_find_weights_file(dir, "diffusion_pytorch_model", out, n);
}

int dhf_model_identity(const char *model_dir, char *name, size_t name_n, char *hash,
                       size_t hash_n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_dir);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        dir[--len] = '\0';
    snprintf(name, name_n, "%s", dhf_basename(dir));
    char id[512];
    if (dhf_sd_model_identity(dir, id, sizeof id) != 0)
        return -1;
    const char *colon = strrchr(id, ':');
    snprintf(hash, hash_n, "fnv1a64:%s", colon ? colon + 1 : id);
    return 0;
}

int dhf_sd_model_identity(const char *dir, char *buf, size_t n)
{
    char wpath[4096];
    if (dhf_model_unet_weights_path(dir, wpath, sizeof wpath) != 0)
        return -1;
    FILE *f = fopen(wpath, "rb");
    if (!f)
        return dhf_err_set("%s: cannot open", wpath);
    unsigned char len8[8];
    uint64_t h = DHF_FNV1A64_INIT;
    int rc = 0;
    unsigned char *chunk = malloc(1 << 20);
    if (!chunk) {
        fclose(f);
        return dhf_err_set("out of memory");
    }
    if (fread(len8, 1, 8, f) != 8) {
        rc = dhf_err_set("%s: truncated header", wpath);
        goto out;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | len8[i];
    const size_t wl = strlen(wpath);
    if (wl > 4 && strcmp(wpath + wl - 4, ".bin") == 0)
        hlen = 0;           /* a torch.save zip: no safetensors header, only the data */
    if (hlen > DHF_ST_MAX_HEADER_BYTES) {
        rc = dhf_err_set("%s: header too large", wpath);
        goto out;
    }
    dhf_fnv1a64_update(&h, len8, 8);
    for (uint64_t done = 0; done < hlen;) {
        size_t want = hlen - done < (1u << 20) ? (size_t)(hlen - done) : (1u << 20);
        size_t got = fread(chunk, 1, want, f);
        if (got != want) {
            rc = dhf_err_set("%s: truncated header", wpath);
            goto out;
        }
        dhf_fnv1a64_update(&h, chunk, got);
        done += got;
    }
    size_t got = fread(chunk, 1, 1 << 20, f);
    dhf_fnv1a64_update(&h, chunk, got);
    if (fseek(f, -(long)(1 << 20), SEEK_END) == 0 && (long)(8 + hlen + (1 << 20)) < ftell(f)) {
        got = fread(chunk, 1, 1 << 20, f);
        dhf_fnv1a64_update(&h, chunk, got);
    }
    {
        /* basename of "a/b/" is "" -> use the trimmed folder name */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", dir);
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/')
            tmp[--l] = '\0';
        /* a weights file other than the usual one is named: which file was read */
        const char *wf = dhf_basename(wpath);
        if (strcmp(wf, "diffusion_pytorch_model.safetensors") == 0)
            snprintf(buf, n, "%s:%016llx", dhf_basename(tmp), (unsigned long long)h);
        else
            snprintf(buf, n, "%s:%016llx@%s", dhf_basename(tmp), (unsigned long long)h, wf);
    }
out:
    free(chunk);
    fclose(f);
    return rc;
}
