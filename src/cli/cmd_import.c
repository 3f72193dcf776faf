/* cmd_import.c — `dhf import WEIGHTS.pt [-o OUT.safetensors]`: an aggregation network
 * saved by the authors' code (torch.save) as a dhf checkpoint plus the config it was
 * trained with (train/pt_checkpoint.h). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/pt_checkpoint.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf import WEIGHTS.pt [-o OUT.safetensors] [--yaml OUT.yaml]\n\n"
            "Reads an aggregation network saved with torch.save by the paper's code\n"
            "({\"step\", \"config\", \"aggregation_network\", \"optimizer_state_dict\"}, or a bare\n"
            "state_dict), e.g. the released aggregation_network.pt, and writes a dhf checkpoint\n"
            "(for dhf eval --checkpoint, dhf heatmap, dhf train --resume) and the resolved config\n"
            "(for dhf extract and dhf eval, so features are extracted as the network expects).\n"
            "L, S, P and C_l come from the tensor shapes and are checked against the stored\n"
            "config; AdamW moments are imported when present. The pickle is read under an\n"
            "allow-list: only dicts, lists, tuples, numbers, strings and tensors; any other\n"
            "global is refused by name and nothing is executed.\n\n"
            "  -o, --output OUT       the checkpoint (default: WEIGHTS with .safetensors)\n"
            "  --yaml OUT.yaml        the config (default: OUT with .yaml)\n"
            "  -h, --help             this text\n\n"
            "Exit codes: 0 ok, 1 unreadable or inconsistent file, 2 usage.\n");
}

/* path with its extension replaced by ext */
static void with_ext(char *out, size_t n, const char *path, const char *ext)
{
    snprintf(out, n, "%s", path);
    char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
    size_t len = strlen(out);
    snprintf(out + len, n - len, "%s", ext);
}

int dhf_cmd_import(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *yaml = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--yaml")) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("import", "%s needs a value", a);
            if (!strcmp(a, "--yaml"))
                yaml = argv[++i];
            else
                out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return dhf_cli_usage_error("import", "unknown option '%s'", a);
        } else if (!in) {
            in = a;
        } else {
            return dhf_cli_usage_error("import", "unexpected argument '%s' (one .pt file)", a);
        }
    }
    if (!in)
        return dhf_cli_usage_error("import", "missing the PyTorch checkpoint (WEIGHTS.pt)");
    char out_buf[4096], yaml_buf[4096];
    if (!out) {
        with_ext(out_buf, sizeof out_buf, in, ".safetensors");
        out = out_buf;
    }
    if (!yaml) {
        with_ext(yaml_buf, sizeof yaml_buf, out, ".yaml");
        yaml = yaml_buf;
    }
    dhf_pt_summary s;
    if (dhf_pt_import(in, out, yaml, &s) != 0)
        return dhf_cli_fail("import");
    printf("imported %s: L = %d layers (C = ", in, s.num_layers);
    for (int l = 0; l < s.num_layers; l++)
        printf("%s%d", l ? "," : "", s.channels[l]);
    printf("), S = %d timesteps, P = %d; step %lld", s.num_timesteps, s.proj_dim,
           (long long)s.step);
    if (s.has_optim)
        printf("; AdamW moments at step %lld", (long long)s.optim_step);
    printf("\n  -> %s\n  -> %s\n", out, yaml);
    if (s.unused_config_keys[0])
        printf("  config keys dhf does not use: %s\n", s.unused_config_keys);
    return DHF_EXIT_OK;
}
