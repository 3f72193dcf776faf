/* cmd_config.c — `dhf config`: print the fully resolved configuration (defaults,
 * then files, then --set), check a file, or print the key reference that
 * docs/CONFIG.md is generated from. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "Usage: dhf config show [CONFIG.yaml ...] [--set key=value ...] [--json]\n"
               "       dhf config check CONFIG.yaml [--set key=value ...]\n"
               "       dhf config docs\n\n"
               "show   prints every key as the run would use it (defaults < files < --set)\n"
               "check  loads and validates; exit 0 if the configuration is usable\n"
               "docs   prints the Markdown key reference (docs/CONFIG.md)\n");
}

int dhf_cmd_config(int argc, char **argv)
{
    if (argc < 2 || dhf_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DHF_EXIT_USAGE : DHF_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "docs") == 0) {
        if (argc > 2)
            return dhf_cli_usage_error("config", "'docs' takes no arguments");
        return dhf_config_write_docs(stdout) == 0 ? DHF_EXIT_OK : dhf_cli_fail("config");
    }
    if (strcmp(sub, "show") != 0 && strcmp(sub, "check") != 0)
        return dhf_cli_usage_error("config", "unknown sub-command '%s'", sub);

    dhf_config cfg;
    dhf_config_defaults(&cfg);
    int json = 0, files = 0;
    for (int i = 2; i < argc; i++) {
        if (dhf_cli_is_help(argv[i])) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(argv[i], "--set") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("config", "--set needs key=value");
            if (dhf_config_set(&cfg, argv[++i]) != 0)
                return dhf_cli_fail("config");
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            i++; /* accepted for uniformity; nothing here is threaded */
        } else if (argv[i][0] == '-') {
            return dhf_cli_usage_error("config", "unknown option '%s'", argv[i]);
        } else {
            if (dhf_config_load_file(&cfg, argv[i]) != 0)
                return dhf_cli_fail("config");
            files++;
        }
    }
    if (strcmp(sub, "check") == 0 && files == 0)
        return dhf_cli_usage_error("config", "'check' needs a CONFIG.yaml");
    if (dhf_config_validate(&cfg) != 0)
        return dhf_cli_fail("config");
    if (strcmp(sub, "check") == 0) {
        printf("config ok\n");
        return DHF_EXIT_OK;
    }
    if (json) {
        char *s = dhf_config_to_json(&cfg);
        if (!s)
            return dhf_cli_fail("config");
        printf("%s\n", s);
        free(s);
        return DHF_EXIT_OK;
    }
    return dhf_config_write_yaml(&cfg, stdout) == 0 ? DHF_EXIT_OK : dhf_cli_fail("config");
}
