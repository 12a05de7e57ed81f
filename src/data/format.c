/*
 * format.c - format detection and field extraction for one record.
 *
 * A sample is first built as a draft: its strings are appended to one
 * growing buffer and referred to by offset (the buffer moves as it grows).
 * Only once the whole record has been checked do the offsets become pointers
 * into a single allocation, so tmap_sample_free is one free() and a bad
 * record leaves no half-built sample behind.
 */
#include "data/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack for the prompt hash */
#include <xxhash.h>

#include "util/error.h"
#include "util/grow.h"

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        enum tmap_status try_status_ = (expr);                                                     \
        if (try_status_ != TMAP_OK)                                                                \
            return try_status_;                                                                    \
    } while (0)

#define NO_TEXT SIZE_MAX /* a draft string that is absent (NULL in the sample) */

/* Roles are compared by pointer: every turn's role is one of these. */
static const char ROLE_SYSTEM[] = "system";
static const char ROLE_USER[] = "user";
static const char ROLE_ASSISTANT[] = "assistant";

struct draft_turn {
    const char *role;
    size_t      content;
};

struct draft_choice {
    size_t text, label;
};

struct draft {
    enum tmap_format format;
    char  *text; /* every string of the sample, each ending in '\0' */
    size_t text_bytes, text_cap;
    bool   oom;  /* an allocation failed; offsets since then are garbage */
    size_t id, prompt, response, answer;
    struct draft_turn   *turns;
    size_t               n_turns, turns_cap;
    struct draft_choice *choices;
    size_t               n_choices, choices_cap;
    int                  answer_index;
};

/* ---- growing buffers ---------------------------------------------------- */

static bool text_reserve(struct draft *d, size_t extra)
{
    if (!d->oom && !tmap_grow((void **)&d->text, &d->text_cap, d->text_bytes + extra, 1))
        d->oom = true;
    return !d->oom;
}

static void text_append(struct draft *d, const char *s, size_t n)
{
    if (!text_reserve(d, n))
        return;
    memcpy(d->text + d->text_bytes, s, n);
    d->text_bytes += n;
}

/* Appends a copy of a string already in the draft. The source is re-read
 * after the reserve because reserving may move the buffer. */
static void text_append_own(struct draft *d, size_t offset)
{
    if (d->oom)
        return;
    size_t n = strlen(d->text + offset);
    if (!text_reserve(d, n))
        return;
    memcpy(d->text + d->text_bytes, d->text + offset, n);
    d->text_bytes += n;
}

/* A string is built with text_open, any number of appends, text_close. */
static size_t text_open(const struct draft *d)
{
    return d->text_bytes;
}

static size_t text_close(struct draft *d, size_t start)
{
    text_append(d, "", 1);
    return start;
}

static size_t text_add(struct draft *d, const char *s, size_t n)
{
    size_t start = text_open(d);
    text_append(d, s, n);
    return text_close(d, start);
}

static size_t text_add_json(struct draft *d, const json_t *string)
{
    return text_add(d, json_string_value(string), json_string_length(string));
}

static void add_turn(struct draft *d, const char *role, size_t content)
{
    if (d->oom ||
        !tmap_grow((void **)&d->turns, &d->turns_cap, d->n_turns + 1, sizeof *d->turns)) {
        d->oom = true;
        return;
    }
    d->turns[d->n_turns++] = (struct draft_turn){role, content};
}

static void add_choice(struct draft *d, size_t text, size_t label)
{
    if (d->oom ||
        !tmap_grow((void **)&d->choices, &d->choices_cap, d->n_choices + 1, sizeof *d->choices)) {
        d->oom = true;
        return;
    }
    d->choices[d->n_choices++] = (struct draft_choice){text, label};
}

static void draft_free(struct draft *d)
{
    free(d->text);
    free(d->turns);
    free(d->choices);
}

/* ---- field access and messages ----------------------------------------- */

const char *tmap_json_type_name(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:  return "object";
    case JSON_ARRAY:   return "array";
    case JSON_STRING:  return "string";
    case JSON_INTEGER:
    case JSON_REAL:    return "number";
    case JSON_TRUE:
    case JSON_FALSE:   return "boolean";
    case JSON_NULL:    return "null";
    }
    return "unknown";
}

static enum tmap_status out_of_memory(struct tmap_error *reason)
{
    return tmap_fail(reason, TMAP_ERR_NOMEM, "out of memory");
}

static enum tmap_status missing(const struct draft *d, const char *name, struct tmap_error *reason)
{
    return tmap_fail(reason, TMAP_ERR_DATA, "missing field \"%s\" (detected format: %s)", name,
                     tmap_format_name(d->format));
}

static enum tmap_status wrong_type(const char *name, const char *expected, const json_t *got,
                                   struct tmap_error *reason)
{
    return tmap_fail(reason, TMAP_ERR_DATA, "field \"%s\" must be %s, got %s", name, expected,
                     tmap_json_type_name(got));
}

/* obj[key] when it is a string, NULL when absent; `name` is how messages
 * call the field ("messages[2].content" for nested ones). */
static enum tmap_status optional_string(const json_t *obj, const char *key, const char *name,
                                        const json_t **out, struct tmap_error *reason)
{
    *out = json_object_get(obj, key);
    if (*out && !json_is_string(*out))
        return wrong_type(name, "a string", *out, reason);
    return TMAP_OK;
}

static enum tmap_status required_string(const struct draft *d, const json_t *obj,
                                        const char *key, const char *name, const json_t **out,
                                        struct tmap_error *reason)
{
    TRY(optional_string(obj, key, name, out, reason));
    return *out ? TMAP_OK : missing(d, name, reason);
}

static enum tmap_status required_array(const struct draft *d, const json_t *obj, const char *key,
                                       const char *name, const json_t **out,
                                       struct tmap_error *reason)
{
    *out = json_object_get(obj, key);
    if (!*out)
        return missing(d, name, reason);
    return json_is_array(*out) ? TMAP_OK : wrong_type(name, "an array", *out, reason);
}

/* array[i], which must be a string; messages call it "name[i]". */
static enum tmap_status string_at(const json_t *array, size_t i, const char *name,
                                  const json_t **out, struct tmap_error *reason)
{
    *out = json_array_get(array, i);
    if (json_is_string(*out))
        return TMAP_OK;
    char element[128];
    snprintf(element, sizeof element, "%s[%zu]", name, i);
    return wrong_type(element, "a string", *out, reason);
}

static bool is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim_ascii_space(const char **begin, const char **end)
{
    while (*begin < *end && is_ascii_space(**begin))
        (*begin)++;
    while (*end > *begin && is_ascii_space((*end)[-1]))
        (*end)--;
}

/* Non-chat formats present their prompt to chat templates as one user turn. */
static void single_user_turn(struct draft *d)
{
    add_turn(d, ROLE_USER, d->prompt);
}

/* ---- alpaca, gsm8k, generic, custom ------------------------------------- */

static enum tmap_status extract_alpaca(const json_t *rec, const struct tmap_field_map *fields,
                                       struct draft *d, struct tmap_error *reason)
{
    (void)fields;
    const json_t *instruction, *input, *output;
    TRY(required_string(d, rec, "instruction", "instruction", &instruction, reason));
    TRY(optional_string(rec, "input", "input", &input, reason));
    TRY(required_string(d, rec, "output", "output", &output, reason));
    size_t start = text_open(d);
    text_append(d, json_string_value(instruction), json_string_length(instruction));
    if (input && json_string_length(input) > 0) {
        text_append(d, "\n\n", 2);
        text_append(d, json_string_value(input), json_string_length(input));
    }
    d->prompt = text_close(d, start);
    d->response = text_add_json(d, output);
    single_user_turn(d);
    return TMAP_OK;
}

/* GSM8K solutions end in "#### 42": the answer is what follows the last
 * marker, trimmed, without thousands separators ("#### 1,234" -> "1234"). */
static size_t gsm8k_final_answer(struct draft *d, const char *solution)
{
    const char *marker = NULL;
    for (const char *p = strstr(solution, "####"); p; p = strstr(p + 1, "####"))
        marker = p;
    if (!marker)
        return NO_TEXT;
    const char *begin = marker + 4, *end = begin + strlen(begin);
    trim_ascii_space(&begin, &end);
    if (begin == end)
        return NO_TEXT;
    size_t start = text_open(d);
    for (const char *p = begin; p < end; p++)
        if (*p != ',')
            text_append(d, p, 1);
    return text_close(d, start);
}

static enum tmap_status extract_gsm8k(const json_t *rec, const struct tmap_field_map *fields,
                                      struct draft *d, struct tmap_error *reason)
{
    (void)fields;
    const json_t *question, *answer;
    TRY(required_string(d, rec, "question", "question", &question, reason));
    TRY(required_string(d, rec, "answer", "answer", &answer, reason));
    d->prompt = text_add_json(d, question);
    d->response = text_add_json(d, answer);
    d->answer = gsm8k_final_answer(d, json_string_value(answer));
    single_user_turn(d);
    return TMAP_OK;
}

static enum tmap_status extract_generic(const json_t *rec, const struct tmap_field_map *fields,
                                        struct draft *d, struct tmap_error *reason)
{
    (void)fields;
    const json_t *prompt, *response;
    TRY(required_string(d, rec, "prompt", "prompt", &prompt, reason));
    TRY(optional_string(rec, "response", "response", &response, reason));
    if (!response)
        TRY(optional_string(rec, "completion", "completion", &response, reason));
    if (!response)
        return tmap_fail(reason, TMAP_ERR_DATA,
                         "missing field \"response\" or \"completion\" (detected format: generic)");
    d->prompt = text_add_json(d, prompt);
    d->response = text_add_json(d, response);
    single_user_turn(d);
    return TMAP_OK;
}

/* Keys named by the caller (--fields); a named answer key is required too. */
static enum tmap_status extract_custom(const json_t *rec, const struct tmap_field_map *fields,
                                       struct draft *d, struct tmap_error *reason)
{
    const json_t *prompt, *response, *answer = NULL;
    TRY(required_string(d, rec, fields->prompt, fields->prompt, &prompt, reason));
    TRY(required_string(d, rec, fields->response, fields->response, &response, reason));
    if (fields->answer)
        TRY(required_string(d, rec, fields->answer, fields->answer, &answer, reason));
    d->prompt = text_add_json(d, prompt);
    d->response = text_add_json(d, response);
    if (answer)
        d->answer = text_add_json(d, answer);
    single_user_turn(d);
    return TMAP_OK;
}

/* ---- multiple choice ----------------------------------------------------- */

/* "choices": ["Paris", "Rome"], labelled A, B, ... in order. */
static enum tmap_status read_choice_list(struct draft *d, const json_t *list,
                                         struct tmap_error *reason)
{
    size_t n = json_array_size(list);
    if (n > 26)
        return tmap_fail(reason, TMAP_ERR_DATA,
                         "field \"choices\" has %zu entries; at most 26 can be labelled A to Z", n);
    for (size_t i = 0; i < n; i++) {
        const json_t *text;
        TRY(string_at(list, i, "choices", &text, reason));
        char label = (char)('A' + i);
        size_t text_offset = text_add_json(d, text);
        add_choice(d, text_offset, text_add(d, &label, 1));
    }
    return TMAP_OK;
}

/* "choices": {"text": [...], "label": [...]}, as in ARC on the Hugging Face
 * hub, where labels may be "A".."E" or "1".."5". */
static enum tmap_status read_choice_table(struct draft *d, const json_t *table,
                                          struct tmap_error *reason)
{
    const json_t *texts, *labels;
    TRY(required_array(d, table, "text", "choices.text", &texts, reason));
    TRY(required_array(d, table, "label", "choices.label", &labels, reason));
    size_t n = json_array_size(texts);
    if (json_array_size(labels) != n)
        return tmap_fail(reason, TMAP_ERR_DATA, "field \"choices\" has %zu texts but %zu labels", n,
                         json_array_size(labels));
    for (size_t i = 0; i < n; i++) {
        const json_t *text, *label;
        TRY(string_at(texts, i, "choices.text", &text, reason));
        TRY(string_at(labels, i, "choices.label", &label, reason));
        size_t text_offset = text_add_json(d, text);
        add_choice(d, text_offset, text_add_json(d, label));
    }
    return TMAP_OK;
}

static enum tmap_status read_choices(struct draft *d, const json_t *choices,
                                     struct tmap_error *reason)
{
    if (json_is_array(choices))
        TRY(read_choice_list(d, choices, reason));
    else if (json_is_object(choices))
        TRY(read_choice_table(d, choices, reason));
    else
        return wrong_type("choices",
                          "an array of strings or an object with \"text\" and \"label\" arrays",
                          choices, reason);
    if (d->oom)
        return out_of_memory(reason);
    if (d->n_choices == 0)
        return tmap_fail(reason, TMAP_ERR_DATA, "field \"choices\" is empty");
    return TMAP_OK;
}

static enum tmap_status answer_by_index(struct draft *d, const char *name, json_int_t index,
                                        struct tmap_error *reason)
{
    if (index < 0 || (uint64_t)index >= d->n_choices)
        return tmap_fail(reason, TMAP_ERR_DATA,
                         "field \"%s\" is %" JSON_INTEGER_FORMAT ", out of range for %zu choices",
                         name, index, d->n_choices);
    d->answer_index = (int)index;
    return TMAP_OK;
}

static enum tmap_status answer_by_label(struct draft *d, const char *name, const char *key,
                                        struct tmap_error *reason)
{
    char labels[160] = "";
    size_t used = 0;
    for (size_t i = 0; i < d->n_choices; i++) {
        const char *label = d->text + d->choices[i].label;
        if (strcmp(label, key) == 0) {
            d->answer_index = (int)i;
            return TMAP_OK;
        }
        if (used < sizeof labels)
            used += (size_t)snprintf(labels + used, sizeof labels - used, "%s%.16s",
                                     i ? ", " : "", label);
    }
    return tmap_fail(reason, TMAP_ERR_DATA, "unknown %s \"%.64s\" (labels: %s)", name, key, labels);
}

/* answerKey is a label ("B", "2") or a 0-based index. MMLU spells the key
 * "answer" (an index), so that is accepted when answerKey is absent. */
static enum tmap_status read_answer_key(struct draft *d, const json_t *rec,
                                        struct tmap_error *reason)
{
    const char *name = "answerKey";
    const json_t *key = json_object_get(rec, name);
    if (!key && (key = json_object_get(rec, "answer")))
        name = "answer";
    if (!key)
        return missing(d, "answerKey", reason);
    if (json_is_integer(key))
        return answer_by_index(d, name, json_integer_value(key), reason);
    if (json_is_string(key))
        return answer_by_label(d, name, json_string_value(key), reason);
    return wrong_type(name, "a string label or an integer index", key, reason);
}

/* The question, then one "A. text" line per choice. */
static void build_mc_prompt(struct draft *d, const json_t *question)
{
    size_t start = text_open(d);
    text_append(d, json_string_value(question), json_string_length(question));
    for (size_t i = 0; i < d->n_choices; i++) {
        text_append(d, "\n", 1);
        text_append_own(d, d->choices[i].label);
        text_append(d, ". ", 2);
        text_append_own(d, d->choices[i].text);
    }
    d->prompt = text_close(d, start);
}

static enum tmap_status extract_mc(const json_t *rec, const struct tmap_field_map *fields,
                                   struct draft *d, struct tmap_error *reason)
{
    (void)fields;
    const json_t *question;
    TRY(required_string(d, rec, "question", "question", &question, reason));
    TRY(read_choices(d, json_object_get(rec, "choices"), reason));
    TRY(read_answer_key(d, rec, reason));
    build_mc_prompt(d, question);
    size_t label = d->choices[d->answer_index].label;
    d->response = text_open(d);
    text_append_own(d, label);
    text_close(d, d->response);
    d->answer = text_open(d);
    text_append_own(d, label);
    text_close(d, d->answer);
    single_user_turn(d);
    return TMAP_OK;
}

/* ---- chat: sharegpt and openai ------------------------------------------- */

struct role_name {
    const char *name;
    const char *role;
};

/* How one chat format spells its turns. */
struct chat_syntax {
    const char             *list;        /* "conversations" */
    const char             *role_key;    /* "from" */
    const char             *content_key; /* "value" */
    const struct role_name *roles;       /* ends with {NULL, NULL} */
    const char             *expected;    /* the role names, for messages */
    bool                    text_parts;  /* content may be [{"type":"text",...}] */
};

static const struct role_name SHAREGPT_ROLES[] = {
    {"human", ROLE_USER},      {"user", ROLE_USER},      {"gpt", ROLE_ASSISTANT},
    {"assistant", ROLE_ASSISTANT}, {"chatgpt", ROLE_ASSISTANT}, {"bing", ROLE_ASSISTANT},
    {"bard", ROLE_ASSISTANT},  {"system", ROLE_SYSTEM},  {NULL, NULL},
};

static const struct role_name OPENAI_ROLES[] = {
    {"system", ROLE_SYSTEM}, {"user", ROLE_USER}, {"assistant", ROLE_ASSISTANT}, {NULL, NULL},
};

static const struct chat_syntax SHAREGPT = {
    "conversations", "from", "value", SHAREGPT_ROLES,
    "human, user, gpt, assistant, chatgpt, bing, bard or system", false,
};

static const struct chat_syntax OPENAI = {
    "messages", "role", "content", OPENAI_ROLES, "system, user or assistant", true,
};

static enum tmap_status read_role(const struct draft *d, const json_t *turn, const char *turn_name,
                                  const struct chat_syntax *syntax, const char **role,
                                  struct tmap_error *reason)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", turn_name, syntax->role_key);
    const json_t *value;
    TRY(required_string(d, turn, syntax->role_key, name, &value, reason));
    for (const struct role_name *r = syntax->roles; r->name; r++) {
        if (strcmp(r->name, json_string_value(value)) == 0) {
            *role = r->role;
            return TMAP_OK;
        }
    }
    return tmap_fail(reason, TMAP_ERR_DATA, "field \"%s\" has unknown role \"%.64s\" (expected %s)",
                     name, json_string_value(value), syntax->expected);
}

/* OpenAI content as a list of parts: the text parts, concatenated. Other
 * parts (images, audio) are refused rather than dropped, since the prompt
 * would then say less than the record does. */
static enum tmap_status read_text_parts(struct draft *d, const json_t *parts, const char *name,
                                        size_t *content, struct tmap_error *reason)
{
    *content = text_open(d);
    for (size_t i = 0; i < json_array_size(parts); i++) {
        const json_t *part = json_array_get(parts, i), *type, *text;
        char part_name[192], field[208];
        snprintf(part_name, sizeof part_name, "%s[%zu]", name, i);
        if (!json_is_object(part))
            return wrong_type(part_name, "an object", part, reason);
        snprintf(field, sizeof field, "%s.type", part_name);
        TRY(required_string(d, part, "type", field, &type, reason));
        if (strcmp(json_string_value(type), "text") != 0)
            return tmap_fail(reason, TMAP_ERR_DATA,
                             "field \"%s\" is \"%.32s\"; only \"text\" parts are supported", field,
                             json_string_value(type));
        snprintf(field, sizeof field, "%s.text", part_name);
        TRY(required_string(d, part, "text", field, &text, reason));
        text_append(d, json_string_value(text), json_string_length(text));
    }
    text_close(d, *content);
    return TMAP_OK;
}

static enum tmap_status read_content(struct draft *d, const json_t *turn, const char *turn_name,
                                     const struct chat_syntax *syntax, size_t *content,
                                     struct tmap_error *reason)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", turn_name, syntax->content_key);
    const json_t *value = json_object_get(turn, syntax->content_key);
    if (!value)
        return missing(d, name, reason);
    if (json_is_string(value)) {
        *content = text_add_json(d, value);
        return TMAP_OK;
    }
    if (syntax->text_parts && json_is_array(value))
        return read_text_parts(d, value, name, content, reason);
    return wrong_type(name, syntax->text_parts ? "a string or an array of text parts" : "a string",
                      value, reason);
}

static enum tmap_status read_turn(struct draft *d, const json_t *turn, size_t i,
                                  const struct chat_syntax *syntax, struct tmap_error *reason)
{
    char name[96];
    snprintf(name, sizeof name, "%s[%zu]", syntax->list, i);
    if (!json_is_object(turn))
        return wrong_type(name, "an object", turn, reason);
    const char *role = NULL;
    size_t content = 0;
    TRY(read_role(d, turn, name, syntax, &role, reason));
    TRY(read_content(d, turn, name, syntax, &content, reason));
    add_turn(d, role, content);
    return TMAP_OK;
}

static const char *role_label(const char *role)
{
    if (role == ROLE_SYSTEM)
        return "System";
    return role == ROLE_USER ? "User" : "Assistant";
}

/* A lone user turn is the prompt as it is; anything longer is rendered one
 * "Role: text" line per turn so the prompt stays readable as plain text. */
static void render_chat_prompt(struct draft *d)
{
    if (d->n_turns == 1 && d->turns[0].role == ROLE_USER) {
        d->prompt = d->turns[0].content;
        return;
    }
    size_t start = text_open(d);
    for (size_t i = 0; i < d->n_turns; i++) {
        const char *label = role_label(d->turns[i].role);
        if (i > 0)
            text_append(d, "\n", 1);
        text_append(d, label, strlen(label));
        text_append(d, ": ", 2);
        text_append_own(d, d->turns[i].content);
    }
    d->prompt = text_close(d, start);
}

/* The last assistant turn is the response and the turns before it the
 * prompt (docs/design.md section 9); turns after it have nothing to answer them
 * and are dropped. */
static enum tmap_status split_chat(struct draft *d, const char *list, struct tmap_error *reason)
{
    size_t last = d->n_turns;
    while (last > 0 && d->turns[last - 1].role != ROLE_ASSISTANT)
        last--;
    if (last == 0)
        return tmap_fail(reason, TMAP_ERR_DATA, "field \"%s\" has no assistant turn", list);
    if (last == 1)
        return tmap_fail(reason, TMAP_ERR_DATA,
                         "field \"%s\" has no turn before its last assistant turn", list);
    d->response = d->turns[last - 1].content;
    d->n_turns = last - 1;
    render_chat_prompt(d);
    return TMAP_OK;
}

static enum tmap_status extract_chat(const json_t *rec, const struct chat_syntax *syntax,
                                     struct draft *d, struct tmap_error *reason)
{
    const json_t *list;
    TRY(required_array(d, rec, syntax->list, syntax->list, &list, reason));
    for (size_t i = 0; i < json_array_size(list); i++)
        TRY(read_turn(d, json_array_get(list, i), i, syntax, reason));
    if (d->oom)
        return out_of_memory(reason);
    return split_chat(d, syntax->list, reason);
}

static enum tmap_status extract_sharegpt(const json_t *rec, const struct tmap_field_map *fields,
                                         struct draft *d, struct tmap_error *reason)
{
    (void)fields;
    return extract_chat(rec, &SHAREGPT, d, reason);
}

static enum tmap_status extract_openai(const json_t *rec, const struct tmap_field_map *fields,
                                       struct draft *d, struct tmap_error *reason)
{
    (void)fields;
    return extract_chat(rec, &OPENAI, d, reason);
}

/* ---- detection and the finished sample ----------------------------------- */

typedef enum tmap_status (*extract_fn)(const json_t *rec, const struct tmap_field_map *fields,
                                       struct draft *d, struct tmap_error *reason);

static const extract_fn EXTRACTORS[TMAP_FORMAT_COUNT] = {
    [TMAP_FORMAT_ALPACA] = extract_alpaca,     [TMAP_FORMAT_GSM8K] = extract_gsm8k,
    [TMAP_FORMAT_SHAREGPT] = extract_sharegpt, [TMAP_FORMAT_OPENAI] = extract_openai,
    [TMAP_FORMAT_GENERIC] = extract_generic,   [TMAP_FORMAT_MC] = extract_mc,
    [TMAP_FORMAT_CUSTOM] = extract_custom,
};

static const char *const FORMAT_NAMES[TMAP_FORMAT_COUNT] = {
    [TMAP_FORMAT_ALPACA] = "alpaca",     [TMAP_FORMAT_GSM8K] = "gsm8k",
    [TMAP_FORMAT_SHAREGPT] = "sharegpt", [TMAP_FORMAT_OPENAI] = "openai",
    [TMAP_FORMAT_GENERIC] = "generic",   [TMAP_FORMAT_MC] = "mc",
    [TMAP_FORMAT_CUSTOM] = "custom",
};

const char *tmap_format_name(enum tmap_format format)
{
    return (unsigned)format < TMAP_FORMAT_COUNT ? FORMAT_NAMES[format] : "unknown";
}

static bool has(const json_t *rec, const char *key)
{
    return json_object_get(rec, key) != NULL;
}

/* A format is recognised by the keys no other format has; its remaining
 * fields are then required, so a record with "instruction" but no "output"
 * is a bad alpaca record rather than an unknown one. The order matters:
 * multiple choice records have a "question" too. */
static enum tmap_format detect_format(const json_t *rec, const struct tmap_field_map *fields)
{
    if (fields && fields->prompt)
        return TMAP_FORMAT_CUSTOM;
    if (has(rec, "question") && has(rec, "choices"))
        return TMAP_FORMAT_MC;
    if (has(rec, "question") && has(rec, "answer"))
        return TMAP_FORMAT_GSM8K;
    if (has(rec, "instruction"))
        return TMAP_FORMAT_ALPACA;
    if (has(rec, "conversations"))
        return TMAP_FORMAT_SHAREGPT;
    if (has(rec, "messages"))
        return TMAP_FORMAT_OPENAI;
    if (has(rec, "prompt"))
        return TMAP_FORMAT_GENERIC;
    return TMAP_FORMAT_COUNT;
}

/* Names the keys the record does have, so the fix (--fields) is obvious. */
static enum tmap_status unknown_format(const json_t *rec, struct tmap_error *reason)
{
    enum { MAX_KEYS_SHOWN = 8 };
    char keys[512] = "";
    size_t used = 0, n = 0;
    json_t *object = (json_t *)rec; /* jansson's iterators take non-const */
    for (void *it = json_object_iter(object); it; it = json_object_iter_next(object, it), n++) {
        if (n == MAX_KEYS_SHOWN) {
            snprintf(keys + used, sizeof keys - used, ", ...");
            break;
        }
        used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%.40s", n ? ", " : "",
                                 json_object_iter_key(it));
    }
    return tmap_fail(reason, TMAP_ERR_DATA,
                     "no known format (keys: %s); use --fields prompt=KEY,response=KEY",
                     n ? keys : "none");
}

/* One block: the turns array, the choices array, then the strings. */
static enum tmap_status draft_finish(const struct draft *d, size_t line, struct tmap_sample *out,
                                     struct tmap_error *reason)
{
    size_t turns_bytes = d->n_turns * sizeof *out->turns;
    size_t choices_bytes = d->n_choices * sizeof *out->choices;
    char *block = malloc(turns_bytes + choices_bytes + d->text_bytes);
    if (!block)
        return out_of_memory(reason);
    char *text = block + turns_bytes + choices_bytes;
    memcpy(text, d->text, d->text_bytes);
    *out = (struct tmap_sample){
        .id = text + d->id, .line = line, .format = d->format,
        .prompt = text + d->prompt, .response = text + d->response,
        .answer = d->answer == NO_TEXT ? NULL : text + d->answer,
        .turns = (struct tmap_turn *)(void *)block, .n_turns = d->n_turns,
        .choices = d->n_choices ? (char **)(void *)(block + turns_bytes) : NULL,
        .n_choices = d->n_choices, .answer_index = d->answer_index, .arena_ = block,
    };
    for (size_t i = 0; i < d->n_turns; i++)
        out->turns[i] = (struct tmap_turn){d->turns[i].role, text + d->turns[i].content};
    for (size_t i = 0; i < d->n_choices; i++)
        out->choices[i] = text + d->choices[i].text;
    return TMAP_OK;
}

enum tmap_status tmap_format_extract(const json_t *record, const struct tmap_field_map *fields,
                                     const char *id, size_t line, struct tmap_sample *out,
                                     struct tmap_error *reason)
{
    struct draft d = {.prompt = NO_TEXT, .response = NO_TEXT, .answer = NO_TEXT,
                      .answer_index = -1};
    memset(out, 0, sizeof *out);
    out->answer_index = -1;
    d.format = detect_format(record, fields);
    if (d.format == TMAP_FORMAT_COUNT)
        return unknown_format(record, reason);
    d.id = text_add(&d, id, strlen(id));
    enum tmap_status status = EXTRACTORS[d.format](record, fields, &d, reason);
    if (status == TMAP_OK && d.oom)
        status = out_of_memory(reason);
    if (status == TMAP_OK)
        status = draft_finish(&d, line, out, reason);
    draft_free(&d);
    return status;
}

enum tmap_status tmap_format_id(const json_t *record, const char *id_field, char *buf,
                                size_t buf_bytes, const char **id, struct tmap_error *reason)
{
    *id = NULL;
    const json_t *value = id_field ? json_object_get(record, id_field) : NULL;
    if (!value)
        return TMAP_OK;
    if (json_is_integer(value)) {
        snprintf(buf, buf_bytes, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        *id = buf;
    } else if (json_is_string(value) && json_string_length(value) > 0) {
        *id = json_string_value(value);
    } else if (json_is_string(value)) {
        return tmap_fail(reason, TMAP_ERR_DATA, "field \"%s\" is an empty string", id_field);
    } else {
        return wrong_type(id_field, "a string or an integer", value, reason);
    }
    return TMAP_OK;
}

/* ---- the sample hash ------------------------------------------------------ */

/* Feeds s, trimmed, with every CRLF fed as LF (a lone CR is kept). */
static void hash_normalised(XXH3_state_t *state, const char *s)
{
    const char *begin = s, *end = s + strlen(s);
    trim_ascii_space(&begin, &end);
    while (begin < end) {
        const char *cr = memchr(begin, '\r', (size_t)(end - begin));
        if (!cr) {
            XXH3_128bits_update(state, begin, (size_t)(end - begin));
            return;
        }
        bool crlf = cr + 1 < end && cr[1] == '\n';
        XXH3_128bits_update(state, begin, (size_t)(cr - begin) + (crlf ? 0 : 1));
        begin = cr + 1;
    }
}

enum tmap_status tmap_sample_hash(const struct tmap_sample *sample, uint8_t out[16])
{
    XXH3_state_t *state = XXH3_createState();
    if (!state)
        return TMAP_ERR_NOMEM;
    XXH3_128bits_reset(state);
    hash_normalised(state, sample->prompt);
    XXH3_128bits_update(state, "", 1);
    hash_normalised(state, sample->response);
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state));
    XXH3_freeState(state);
    memcpy(out, canonical.digest, sizeof canonical.digest);
    return TMAP_OK;
}

/* Feeds s as a question: ASCII letters in lower case and every run of
 * ASCII whitespace as one space, trimmed. A benchmark question copied
 * into a scraped pool often differs from the original only so (a re-wrapped
 * line, a doubled space, "what" for "What"). */
static void hash_question(XXH3_state_t *state, const char *s)
{
    char buf[256];
    size_t n = 0;
    bool space = false;
    const char *begin = s, *end = s + strlen(s);
    trim_ascii_space(&begin, &end);
    for (const char *c = begin; c < end; c++) {
        unsigned char ch = (unsigned char)*c;
        bool white = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
        if (white) {
            space = true;
            continue;
        }
        if (n + 2 > sizeof buf) {
            XXH3_128bits_update(state, buf, n);
            n = 0;
        }
        if (space)
            buf[n++] = ' ';
        space = false;
        buf[n++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    XXH3_128bits_update(state, buf, n);
}

uint64_t tmap_sample_prompt_hash(const struct tmap_sample *sample)
{
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_128bits_reset(&state);
    hash_question(&state, sample->prompt);
    return XXH3_128bits_digest(&state).low64;
}

void tmap_hash_hex(const uint8_t hash[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int b = 0; b < 16; b++) {
        out[2 * b] = digits[hash[b] >> 4];
        out[2 * b + 1] = digits[hash[b] & 15];
    }
    out[32] = '\0';
}

bool tmap_record_write_line(FILE *f, const char *raw, size_t n)
{
    if (!memchr(raw, '\n', n) && !memchr(raw, '\r', n))
        return fwrite(raw, 1, n, f) == n && fputc('\n', f) != EOF;
    /* Outside strings, JSON whitespace separates tokens and means nothing;
     * inside them a line break cannot occur raw, so nothing else changes. */
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        if (fputc(c, f) == EOF)
            return false;
    }
    return fputc('\n', f) != EOF;
}
