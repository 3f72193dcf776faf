/* cli_util.h — what every sub-command shares: exit codes, the error/usage
 * printers, and the options common to all commands (--threads N, --help). */
#ifndef DHF_CLI_UTIL_H
#define DHF_CLI_UTIL_H

#include <stdbool.h>

enum { DHF_EXIT_OK = 0, DHF_EXIT_USER = 1, DHF_EXIT_USAGE = 2 };

/* Prints "dhf <cmd>: <message from dhf_err_msg()>" and returns DHF_EXIT_USER. */
int dhf_cli_fail(const char *cmd);
/* Prints "dhf <cmd>: <fmt...>\nTry 'dhf <cmd> --help'." and returns DHF_EXIT_USAGE. */
int dhf_cli_usage_error(const char *cmd, const char *fmt, ...);
bool dhf_cli_is_help(const char *arg);   /* -h or --help */
/* Parses "N" as a thread count (>= 0). Returns 0 or -1 (message set). */
int dhf_cli_parse_threads(const char *s, int *threads);
/* Applies a thread count to libtorch (0 = number of cores). */
int dhf_cli_apply_threads(int threads);

#endif
