/*
 * answer.h - the task's short answer in a model's (or a gold) solution.
 *
 * GSM8K-style tasks are scored by the final number alone (docs/design.md
 * section 5): the accuracy metric of `tmap eval` and of the ICL proxy
 * extracts it from the generated text and from the gold answer, then
 * compares the two as numbers.
 */
#ifndef TMAP_TASK_ANSWER_H
#define TMAP_TASK_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

/* The task answer in text: the number after the last "####", else after the
 * last "The answer is" (any case), else the last number in the text; ","
 * and "$" removed, a trailing "." or ".0" removed ("18." -> "18",
 * "5.0" -> "5"; trailing fraction zeros generally: "2.50" -> "2.5").
 * Writes it to out; false (out "") when there is no number or it does not
 * fit in out_bytes. */
bool tmap_extract_answer(const char *text, char *out, size_t out_bytes);

/* The bytes [*begin, *end) of the answer a solution announces: the number
 * tmap_extract_answer reads after the last "####" or "The answer is". No
 * marker (or no number after it): false. The last-number fallback is left
 * out on purpose: a solution without a marker makes no claim to check. */
bool tmap_marked_answer_span(const char *text, size_t *begin, size_t *end);

/* Do two extracted answers denote the same number? (compared as numbers:
 * "5" == "5.00", "-3" == "-3"). False when either is not a plain decimal
 * number ("[-]digits[.digits]", surrounding spaces allowed). */
bool tmap_answers_match(const char *a, const char *b);

#endif
