/* cli_util.c — shared CLI helpers: error and usage printing, --threads. */
#include "cli/cli_util.h"
#include "core/error.h"
#include "shim/torch_shim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dhf_cli_fail(const char *cmd)
{
    const char *m = dhf_err_msg();
    fprintf(stderr, "dhf %s: %s\n", cmd, m[0] ? m : "failed (no message)");
    return DHF_EXIT_USER;
}

int dhf_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "dhf %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'dhf %s --help'.\n", cmd);
    return DHF_EXIT_USAGE;
}

bool dhf_cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int dhf_cli_parse_threads(const char *s, int *threads)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < 0 || v > 4096)
        return dhf_err_set("--threads: expected an integer 0..4096 (0 = all cores), got '%s'", s);
    *threads = (int)v;
    return 0;
}

int dhf_cli_apply_threads(int threads)
{
    if (dhf_set_num_threads(threads) != DHF_OK)
        return dhf_err_set("cannot set %d threads: %s", threads, dhf_last_error());
    if (dhf_set_blas_threads(0, NULL) != DHF_OK)
        return dhf_err_set("%s", dhf_last_error());
    return 0;
}
