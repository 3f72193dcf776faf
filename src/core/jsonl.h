/* jsonl.h — append-only JSON-lines metric logs (one object per line, flushed per
 * line so an interrupted run keeps every finished record). */
#ifndef DHF_CORE_JSONL_H
#define DHF_CORE_JSONL_H

#include <stdio.h>

typedef struct cJSON cJSON;

typedef struct {
    FILE *fp;
    char path[4096];
} dhf_jsonl;

/* append: keep existing lines (resume) instead of truncating. */
int dhf_jsonl_open(dhf_jsonl *log, const char *path, int append);
/* Writes obj as one line and flushes; obj is not freed. */
int dhf_jsonl_write(dhf_jsonl *log, const cJSON *obj);
int dhf_jsonl_close(dhf_jsonl *log);

#endif
