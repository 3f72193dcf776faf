/* cmd_heatmap.c — `dhf heatmap CKPT -o OUT.png`: the softmaxed mixing weights of a
 * checkpoint as a heatmap (PNG, SVG and CSV beside each other; train/heatmap.h). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/heatmap.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf heatmap CKPT -o OUT.png [--title T] [--threads N]\n\n"
            "Draws the softmaxed mixing weights of a training checkpoint (a .safetensors\n"
            "file written by dhf train) as a heatmap: rows Layer 1..L, columns the saved\n"
            "timesteps labelled as in the paper (for inversion the save_timestep labels are\n"
            "reversed, so the clean-image end comes first, labelled 0), each cell's value,\n"
            "a viridis colour bar and a title with the run name. Writes OUT.png, OUT.svg\n"
            "(same drawing) and OUT.csv (the values, full precision), each atomically.\n\n"
            "  -o, --output OUT.png   output path; must end in .png (required)\n"
            "  --title T              title (default: \"Mixing weights: <run name>\")\n"
            "  --threads N            accepted for uniformity (nothing here is threaded)\n"
            "  -h, --help             this text\n\n"
            "Exit codes: 0 ok, 1 unreadable/invalid checkpoint or unwritable output, 2 usage.\n");
}

int dhf_cmd_heatmap(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *title = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("heatmap", "%s needs a value", a);
            out = argv[++i];
        } else if (strcmp(a, "--title") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("heatmap", "--title needs a value");
            title = argv[++i];
        } else if (strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("heatmap", "--threads needs a value");
            if (dhf_cli_parse_threads(argv[++i], &threads) != 0)
                return dhf_cli_usage_error("heatmap", "%s", dhf_err_msg());
        } else if (a[0] == '-' && a[1]) {
            return dhf_cli_usage_error("heatmap", "unknown option '%s'", a);
        } else if (!ckpt) {
            ckpt = a;
        } else {
            return dhf_cli_usage_error("heatmap", "unexpected argument '%s' (one checkpoint)", a);
        }
    }
    if (!ckpt)
        return dhf_cli_usage_error("heatmap", "missing the checkpoint (CKPT)");
    if (!out)
        return dhf_cli_usage_error("heatmap", "missing -o OUT.png");
    size_t n = strlen(out);
    if (n < 5 || strcmp(out + n - 4, ".png") != 0)
        return dhf_cli_usage_error("heatmap", "-o '%s' must end in .png", out);
    if (dhf_cli_apply_threads(threads) != 0)
        return dhf_cli_fail("heatmap");

    int S = 0, L = 0;
    if (dhf_heatmap_from_checkpoint(ckpt, title, out, &S, &L) != 0)
        return dhf_cli_fail("heatmap");
    printf("wrote %s (and .svg, .csv): %d timesteps x %d layers\n", out, S, L);
    return DHF_EXIT_OK;
}
