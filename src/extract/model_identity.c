/* model_identity.c — model folder name + UNet weights fingerprint in the cache's
 * form (model_identity.h); the fingerprint itself is sd_model.c's. */
#include "extract/model_identity.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "extract/sd_model.h"
#include "extract/sd_params.h"

#include <stdio.h>
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
