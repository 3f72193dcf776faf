/* cmd_export.c — `dhf export CKPT.safetensors -o OUT.pt`: a dhf checkpoint in the
 * layout the paper's code loads with torch.load (train/pt_checkpoint.h). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/pt_checkpoint.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf export CKPT.safetensors -o OUT.pt\n\n"
            "Writes a dhf checkpoint as a torch.save file in the paper's layout:\n"
            "{\"step\", \"config\", \"aggregation_network\" (an OrderedDict with the names\n"
            "bottleneck_layers.{l}.0.*, mixing_weights), \"optimizer_state_dict\" (when the\n"
            "checkpoint has AdamW moments)}, loadable with torch.load and\n"
            "AggregationNetwork.load_state_dict, and by dhf import (bit-identical tensors).\n\n"
            "  -o, --output OUT.pt    output path (required)\n"
            "  -h, --help             this text\n\n"
            "Exit codes: 0 ok, 1 unreadable checkpoint or unwritable output, 2 usage.\n");
}

int dhf_cmd_export(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("export", "%s needs a value", a);
            out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return dhf_cli_usage_error("export", "unknown option '%s'", a);
        } else if (!in) {
            in = a;
        } else {
            return dhf_cli_usage_error("export", "unexpected argument '%s' (one checkpoint)", a);
        }
    }
    if (!in)
        return dhf_cli_usage_error("export", "missing the checkpoint (CKPT.safetensors)");
    if (!out)
        return dhf_cli_usage_error("export", "missing -o OUT.pt");
    dhf_pt_summary s;
    if (dhf_pt_export(in, out, &s) != 0)
        return dhf_cli_fail("export");
    printf("exported %s: L = %d layers, S = %d timesteps, step %lld%s\n  -> %s\n", in,
           s.num_layers, s.num_timesteps, (long long)s.step,
           s.has_optim ? ", with AdamW state" : "", out);
    return DHF_EXIT_OK;
}
