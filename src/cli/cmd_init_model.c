/* cmd_init_model.c — `dhf init-model`: writes a diffusers-layout Stable Diffusion
 * folder with seeded random weights (tiny models for demos and tests, real SD sizes
 * for benchmarks), then loads it back once as a check. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "extract/init_model.h"
#include "extract/sd_model.h"
#include "extract/vit_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf init-model --preset NAME -o DIR [--seed N] [--dtype D] [--force]\n"
            "                      [--no-verify] [--threads N]\n\n"
            "Writes a Stable Diffusion folder in diffusers layout (model_index.json, unet/,\n"
            "vae/, text_encoder/, tokenizer/ configs, scheduler/) with seeded random weights.\n"
            "The folder appears atomically; it is then loaded back once as a check.\n\n"
            "  --preset NAME   tiny-sd15   SD-1.5 structure at the parity fixtures' tiny sizes\n"
            "                  tiny-sd21   SD-2.x structure (linear projections, per-block\n"
            "                              head counts, exact-GELU CLIP, pad token \"!\")\n"
            "                  sd15-shapes real SD 1.5 sizes (3.4 GB UNet in float32)\n"
            "                  sd21-shapes real SD 2.1-base sizes\n"
            "                  tiny-dino   a DINO ViT (patch 8, 10 blocks, C 48): config.json +\n"
            "                              model.safetensors, for dhf eval --provider dino:DIR\n"
            "                  tiny-dinov2 a DINOv2 ViT (patch 14, 12 blocks, C 48, LayerScale)\n"
            "                  dino_vits8, dinov2_vits14, dinov2_vitb14, ...: the real ViT\n"
            "                              sizes with random weights\n"
            "  -o, --output DIR  the model folder to create\n"
            "  --seed N        random seed (default 0); same seed, same bytes\n"
            "  --dtype D       float32 (default), float16 or bfloat16 weight files\n"
            "  --force         overwrite the model files of an existing non-empty folder\n"
            "  --no-verify     skip loading the written model back\n"
            "  --threads N     intra-op threads (default: all cores)\n");
}

int dhf_cmd_init_model(int argc, char **argv)
{
    const char *cmd = "init-model";
    dhf_init_model_opts o = {.preset = NULL, .seed = 0, .dtype = DHF_ST_F32, .force = false};
    const char *out = NULL;
    bool verify = true;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(a, "--preset") == 0 && has_value) {
            o.preset = argv[++i];
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has_value) {
            out = argv[++i];
        } else if (strcmp(a, "--seed") == 0 && has_value) {
            char *end = NULL;
            const char *v = argv[++i];
            unsigned long long s = strtoull(v, &end, 10);
            if (!v[0] || *end || v[0] == '-')
                return dhf_cli_usage_error(cmd, "--seed: expected a non-negative integer, got '%s'",
                                           v);
            o.seed = (uint64_t)s;
        } else if (strcmp(a, "--dtype") == 0 && has_value) {
            const char *v = argv[++i];
            if (strcmp(v, "float32") == 0)
                o.dtype = DHF_ST_F32;
            else if (strcmp(v, "float16") == 0)
                o.dtype = DHF_ST_F16;
            else if (strcmp(v, "bfloat16") == 0)
                o.dtype = DHF_ST_BF16;
            else
                return dhf_cli_usage_error(cmd, "--dtype: expected float32, float16 or bfloat16, "
                                                "got '%s'", v);
        } else if (strcmp(a, "--force") == 0) {
            o.force = true;
        } else if (strcmp(a, "--no-verify") == 0) {
            verify = false;
        } else if (strcmp(a, "--threads") == 0 && has_value) {
            if (dhf_cli_parse_threads(argv[++i], &threads) != 0)
                return dhf_cli_usage_error(cmd, "%s", dhf_err_msg());
        } else {
            return dhf_cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!o.preset)
        return dhf_cli_usage_error(cmd, "--preset is required");
    if (!out)
        return dhf_cli_usage_error(cmd, "-o DIR is required");
    if (dhf_cli_apply_threads(threads) != 0)
        return dhf_cli_fail(cmd);

    int64_t n_params = 0;
    dhf_vit_config vc;
    if (dhf_vit_preset(o.preset, &vc) == 0) {
        /* a ViT baseline's folder: config.json + model.safetensors */
        if (dhf_vit_init_write(out, o.preset, o.seed, o.dtype, o.force, &n_params) != 0)
            return dhf_cli_fail(cmd);
        printf("wrote %s: ViT preset %s, seed %llu, %lld parameters\n", out, o.preset,
               (unsigned long long)o.seed, (long long)n_params);
        if (verify) {
            char w[4200];
            dhf_vit *v = NULL;
            snprintf(w, sizeof w, "%s/model.safetensors", out);
            if (dhf_vit_load(&vc, w, &v) != 0) {
                dhf_err_wrap("written model does not load back");
                return dhf_cli_fail(cmd);
            }
            printf("verified: %s loads (%s, %d blocks, C %d, %d heads)\n", out,
                   vc.family == DHF_VIT_DINO ? "DINO" : "DINOv2", vc.depth, vc.embed_dim,
                   vc.num_heads);
            dhf_vit_free(v);
        }
        return DHF_EXIT_OK;
    }
    dhf_err_clear();
    if (dhf_init_model_write(out, &o, &n_params) != 0)
        return dhf_cli_fail(cmd);
    printf("wrote %s: preset %s, seed %llu, %lld parameters\n", out, o.preset,
           (unsigned long long)o.seed, (long long)n_params);
    if (verify) {
        dhf_sd_model *m = NULL;
        if (dhf_sd_model_load(out, NULL, &m) != 0) {
            dhf_err_wrap("written model does not load back");
            return dhf_cli_fail(cmd);
        }
        printf("verified: %s loads (UNet %lld parameters, %d DHF layers), identity %s\n", out,
               (long long)dhf_unet_param_count(m->unet), dhf_unet_n_features(m->unet),
               m->identity);
        dhf_sd_model_free(m);
    }
    return DHF_EXIT_OK;
}
