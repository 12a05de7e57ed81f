/*
 * fuzz_answer.c - GSM8K answer extraction ("#### 42", "The answer is
 * 1,234.50") and the numeric comparison eval makes with it. The input is
 * split at its first NUL into a prediction and a gold answer.
 */
#include "fuzz.h"
#include "task/answer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char got[64];
    bool found = tmap_extract_answer(text, got, sizeof got);
    if (found && strlen(got) >= sizeof got)
        abort();
    size_t first = strlen(text);
    const char *gold = first < size ? text + first + 1 : "";
    if (found)
        tmap_answers_match(got, gold);
    tmap_answers_match(text, gold);
    free(text);
    return 0;
}
