/* cmd_generate.c — `dhf generate`: images and their generation features from prompts
 * (extract/generate_run.h). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "shim/torch_shim.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "extract/generate_run.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ARGS 256
#define MAX_PROMPTS 4096

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf generate CONFIG.yaml [--prompt TEXT ... | --prompts FILE.json]\n"
            "                    [--negative-prompt TEXT] [--seed S] [-n N] [--init-latent FILE]\n"
            "                    [-o OUTDIR] [--cache FILE.h5] [--set key=value ...] [--threads N]\n\n"
            "The paper's generation mode: for every prompt, N images (default 2, the paper's\n"
            "batch) from seeded noise through its DDIM sampler (num_timesteps steps) with\n"
            "classifier-free guidance (guidance_scale; -1 = none) against the negative prompt,\n"
            "the decoder features of the conditional pass at save_timestep stored in an HDF5\n"
            "feature cache (the format of dhf extract; slot order by flip_timesteps, see\n"
            "docs/GENERATION.md), the decoded images as PNG. Writes OUTDIR/images/<key>,\n"
            "OUTDIR/features.h5 (or --cache), OUTDIR/latents/*.safetensors (the initial\n"
            "noise), OUTDIR/generations.jsonl (prompt, seed, latent per image) and\n"
            "OUTDIR/config.resolved.yaml. A re-run skips prompts already generated.\n\n"
            "  --prompt TEXT          a prompt (repeatable; default: the prompt key)\n"
            "  --prompts FILE.json    a list of prompts: [\"...\", ...], or [{\"prompt\": ...,\n"
            "                         \"negative_prompt\", \"seed\", \"n\"}, ...], or {\"prompts\": [...]}\n"
            "  --negative-prompt T    the negative prompt (default: the negative_prompt key)\n"
            "  --seed S               noise seed of the first prompt; prompt i uses S + i\n"
            "                         (default: the seed key); torch.randn with a CPU generator\n"
            "                         seeded S, so PyTorch reproduces it\n"
            "  -n N                   images per prompt (default 2)\n"
            "  --init-latent FILE     the initial noise from a safetensors file (one tensor\n"
            "                         [N, 4, r/8, r/8]; one prompt) instead of the seed\n"
            "  -o OUTDIR              output folder (default <output_dir>/generate-<time>)\n"
            "  --cache FILE.h5        the feature cache (default OUTDIR/features.h5)\n"
            "  --set key=value        any configuration key (e.g. guidance_scale=7.5)\n"
            "  --threads N            CPU threads (default: the threads key)\n");
}

static char *dup_str(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d)
        strcpy(d, s);
    return d;
}

/* --prompts FILE.json into p[] (strings strdup'ed); returns the count or -1. */
static int read_prompts(const char *path, dhf_gen_prompt *p, int cap, int64_t seed, int n)
{
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *list = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "prompts") : o;
    int k = -1;
    if (!cJSON_IsArray(list)) {
        dhf_err_set("%s: expected a JSON list of prompts (or {\"prompts\": [...]})", path);
        goto done;
    }
    k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (k == cap) {
            dhf_err_set("%s: more than %d prompts", path, cap);
            k = -1;
            goto done;
        }
        const cJSON *pr = cJSON_IsString(e) ? e : cJSON_GetObjectItemCaseSensitive(e, "prompt");
        if (!cJSON_IsString(pr)) {
            dhf_err_set("%s: entry %d: expected a string or an object with \"prompt\"", path, k);
            k = -1;
            goto done;
        }
        p[k].prompt = dup_str(pr->valuestring);
        p[k].seed = seed + k;
        p[k].n = n;
        const cJSON *neg = cJSON_GetObjectItemCaseSensitive(e, "negative_prompt");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(e, "seed");
        const cJSON *nn = cJSON_GetObjectItemCaseSensitive(e, "n");
        if (cJSON_IsString(neg))
            p[k].negative_prompt = dup_str(neg->valuestring);
        if (cJSON_IsNumber(sd))
            p[k].seed = (int64_t)sd->valuedouble;
        if (cJSON_IsNumber(nn))
            p[k].n = nn->valueint;
        k++;
    }
done:
    cJSON_Delete(o);
    return k;
}

int dhf_cmd_generate(int argc, char **argv)
{
    const char *files[MAX_ARGS], *sets[MAX_ARGS], *prompts[MAX_ARGS];
    int n_files = 0, n_sets = 0, n_prompt_args = 0, threads = -1, n = 2;
    const char *prompts_file = NULL, *neg = NULL, *init = NULL, *out = NULL, *seed_s = NULL;
    const char *cache = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        }
        if (a[0] != '-') {
            if (n_files == MAX_ARGS)
                return dhf_cli_usage_error("generate", "too many config files");
            files[n_files++] = a;
            continue;
        }
        if (i + 1 >= argc)
            return dhf_cli_usage_error("generate", "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--prompt") == 0) {
            if (n_prompt_args == MAX_ARGS)
                return dhf_cli_usage_error("generate", "too many --prompt options");
            prompts[n_prompt_args++] = v;
        } else if (strcmp(a, "--prompts") == 0) {
            prompts_file = v;
        } else if (strcmp(a, "--negative-prompt") == 0) {
            neg = v;
        } else if (strcmp(a, "--seed") == 0) {
            seed_s = v;
        } else if (strcmp(a, "-n") == 0) {
            char *end = NULL;
            long x = strtol(v, &end, 10);
            if (!*v || *end || x < 1 || x > 64)
                return dhf_cli_usage_error("generate", "-n: expected 1..64, got '%s'", v);
            n = (int)x;
        } else if (strcmp(a, "--init-latent") == 0) {
            init = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out = v;
        } else if (strcmp(a, "--cache") == 0) {
            cache = v;
        } else if (strcmp(a, "--set") == 0) {
            if (n_sets == MAX_ARGS)
                return dhf_cli_usage_error("generate", "too many --set options");
            sets[n_sets++] = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (dhf_cli_parse_threads(v, &threads) != 0)
                return dhf_cli_usage_error("generate", "%s", dhf_err_msg());
        } else {
            return dhf_cli_usage_error("generate", "unknown option '%s'", a);
        }
    }
    if (n_files == 0)
        return dhf_cli_usage_error("generate", "a CONFIG.yaml is required");
    if (prompts_file && n_prompt_args)
        return dhf_cli_usage_error("generate", "give --prompt or --prompts, not both");
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    for (int i = 0; i < n_files; i++)
        if (dhf_config_load_file(&cfg, files[i]) != 0)
            return dhf_cli_fail("generate");
    for (int i = 0; i < n_sets; i++)
        if (dhf_config_set(&cfg, sets[i]) != 0)
            return dhf_cli_usage_error("generate", "%s", dhf_err_msg());
    char buf[64];
    if (seed_s) {
        snprintf(buf, sizeof buf, "seed=%s", seed_s);
        if (dhf_config_set(&cfg, buf) != 0)
            return dhf_cli_usage_error("generate", "--seed: %s", dhf_err_msg());
    }
    if (dhf_config_set(&cfg, "diffusion_mode=generation") != 0 || dhf_config_validate(&cfg) != 0)
        return dhf_cli_fail("generate");
    if (dhf_cli_apply_threads(threads >= 0 ? threads : cfg.threads) != 0)
        return dhf_cli_fail("generate");
    if (dhf_cpu_caching_allocator(true) != DHF_OK) {
        dhf_err_set("%s", dhf_last_error());
        return dhf_cli_fail("generate");
    }

    static dhf_gen_prompt p[MAX_PROMPTS];
    int np = 0;
    if (prompts_file) {
        np = read_prompts(prompts_file, p, MAX_PROMPTS, cfg.seed, n);
        if (np < 0)
            return dhf_cli_fail("generate");
    } else if (n_prompt_args) {
        for (int i = 0; i < n_prompt_args; i++)
            p[np++] = (dhf_gen_prompt){.prompt = prompts[i], .seed = cfg.seed + i, .n = n};
    } else {
        p[np++] = (dhf_gen_prompt){.prompt = cfg.prompt, .seed = cfg.seed, .n = n};
    }
    if (neg)
        for (int i = 0; i < np; i++)
            if (!p[i].negative_prompt)
                p[i].negative_prompt = neg;
    char out_buf[4096];
    if (!out) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        char leaf[64];
        snprintf(leaf, sizeof leaf, "generate-%s", stamp);
        if (dhf_path_join(out_buf, sizeof out_buf, cfg.output_dir, leaf) != 0)
            return dhf_cli_fail("generate");
        out = out_buf;
    }
    dhf_generate_options o = {.prompts = p, .n_prompts = np, .init_latent = init, .out_dir = out,
                              .cache_path = cache};
    dhf_generate_summary s;
    if (dhf_generate_run(&cfg, &o, &s) != 0)
        return dhf_cli_fail("generate");
    printf("generated %d prompt(s) in %.1f s (%d already done); %lld images in %s -> %s/images, "
           "%s/generations.jsonl\n",
           s.prompts_generated, s.seconds, s.prompts_done_before, (long long)s.images,
           s.cache_path, out, out);
    return DHF_EXIT_OK;
}
