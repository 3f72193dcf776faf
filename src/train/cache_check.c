/* cache_check.c — does the feature cache hold what the training config asks for
 * (see cache_check.h). */
#include "train/cache_check.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "cache/model_identity.h"
#include "train/checkpoint.h"

/* The cache's identity JSON with the config's diffusion_mode, num_timesteps and
 * save_timestep in place of its own (malloc'd). */
static char *wanted_features(const dhf_config *cfg, const char *cache_json)
{
    cJSON *o = cJSON_Parse(cache_json && cache_json[0] ? cache_json : "{}");
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    if (!o)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "diffusion_mode");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "num_timesteps");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "save_timestep");
    cJSON_AddStringToObject(o, "diffusion_mode", cfg->diffusion_mode);
    cJSON_AddNumberToObject(o, "num_timesteps", cfg->num_timesteps);
    cJSON *labels = cJSON_AddArrayToObject(o, "save_timestep");
    for (int i = 0; labels && i < cfg->save_timestep.n; i++)
        cJSON_AddItemToArray(labels, cJSON_CreateNumber((double)cfg->save_timestep.v[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Folder name of a model path, without trailing slashes. */
static void folder_name(const char *path, char *out, size_t n)
{
    char tmp[DHF_CFG_STR];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = '\0';
    snprintf(out, n, "%s", dhf_basename(tmp));
}

int dhf_train_check_cache(const dhf_config *cfg, const char *cfg_name, dhf_feature_cache *cache)
{
    const dhf_cache_layout *l = dhf_cache_get_layout(cache);
    dhf_cache_identity have, want;
    if (dhf_cache_identity_from_layout(l, &have) != 0)
        return -1;
    want = have;
    if (cfg->model_id[0]) {
        char weights[4096];
        if (dhf_is_dir(cfg->model_id) &&
            dhf_model_unet_weights_path(cfg->model_id, weights, sizeof weights) == 0) {
            if (dhf_model_identity(cfg->model_id, want.model_name, sizeof want.model_name,
                                   want.model_hash, sizeof want.model_hash) != 0)
                return dhf_err_wrap("model_id");
        } else {
            /* the model is not here (a cache copied to another machine): its name is
             * all the config says about it */
            folder_name(cfg->model_id, want.model_name, sizeof want.model_name);
            if (strcmp(want.model_name, have.model_name) != 0)
                snprintf(want.model_hash, sizeof want.model_hash, "unknown, folder not found");
        }
    }
    if (cfg->save_timestep.n > DHF_CACHE_ID_MAX_STEPS)
        return dhf_err_set("save_timestep: at most %d labels", DHF_CACHE_ID_MAX_STEPS);
    want.num_steps = cfg->save_timestep.n;
    for (int s = 0; s < want.num_steps; s++)
        want.save_timestep[s] = cfg->save_timestep.v[s];
    char *features = wanted_features(cfg, have.features_json);
    if (!features)
        return dhf_err_set("out of memory");
    want.features_json = features;
    char want_name[DHF_CFG_STR + 32], have_name[4200];
    snprintf(want_name, sizeof want_name, "config %s", cfg_name ? cfg_name : "");
    snprintf(have_name, sizeof have_name, "feature cache %s", dhf_cache_path(cache));
    int rc = dhf_cache_identity_check(&want, want_name, &have, have_name);
    free(features);
    return rc;
}
