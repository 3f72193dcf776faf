/* jsonl.c — JSON-lines writer for metric logs. */
#include "core/jsonl.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int dhf_jsonl_open(dhf_jsonl *log, const char *path, int append)
{
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s", path);
    log->fp = fopen(path, append ? "ab" : "wb");
    if (!log->fp)
        return dhf_err_set("%s: cannot open for writing: %s", path, strerror(errno));
    return 0;
}

int dhf_jsonl_write(dhf_jsonl *log, const cJSON *obj)
{
    if (!log->fp)
        return dhf_err_set("%s: log is not open", log->path);
    char *s = cJSON_PrintUnformatted(obj);
    if (!s)
        return dhf_err_set("%s: cannot serialise record", log->path);
    int bad = fputs(s, log->fp) < 0 || fputc('\n', log->fp) == EOF || fflush(log->fp) != 0;
    free(s);
    if (bad)
        return dhf_err_set("%s: write failed: %s", log->path, strerror(errno));
    return 0;
}

int dhf_jsonl_close(dhf_jsonl *log)
{
    if (!log->fp)
        return 0;
    int bad = fclose(log->fp) != 0;
    log->fp = NULL;
    return bad ? dhf_err_set("%s: close failed", log->path) : 0;
}
