/*
 * text.h - indicators read from a sample's text alone, with no model:
 * `steps`, `numeracy`, `lexical` and `coverage` (docs/design.md section 2).
 *
 * They are cheap (one pass over the text) and model-free, so the score store
 * keeps them under the empty model fingerprint and computes them once per
 * pool. Each returns a plain number; NaN means the text could not be read
 * (memory ran out), which the store keeps as a missing value.
 */
#ifndef TMAP_INDICATORS_TEXT_H
#define TMAP_INDICATORS_TEXT_H

/*
 * Reasoning steps in a response.
 *
 * Lines are split on '\n'; a line counts when it is not empty after trimming
 * whitespace. The last non-empty line is not counted when it starts with
 * "####" (GSM8K's final-answer line: it states the result, it is not a step).
 * When exactly one line counts, the response is prose, so its sentences are
 * counted instead: a sentence ends at a run of '.', '!' or '?' (optionally
 * followed by closing quotes or brackets) that is followed by whitespace or
 * the end of the text, and trailing text without a terminator is a sentence
 * too. So "3.5" (no space after the dot) never splits, "Wait..." ends one
 * sentence, and text made only of punctuation has none. Abbreviations such as
 * "e.g. " do split: telling them apart needs a language model, and the
 * indicator only ranks samples against each other.
 */
double tmap_indicator_steps(const char *response);

/*
 * Arithmetic operations written out: number, operator, number.
 *
 * Numbers are digits with optional thousands commas ("1,000") and decimals
 * ("3.5", ".40"), an optional leading '$' and trailing '%'; a number glued
 * to a letter ("A4") is part of a word, not a number. Operators are
 * + - * / x X, U+00D7 and U+00F7, and also U+2212 (minus sign) and U+2013
 * (en dash), which real GSM8K answers write for minus (train.jsonl line 346:
 * "$40 <en dash> $4"); spaces or tabs (not newlines) may surround them, and "x"
 * counts only when no letter touches it ("2 x 3", "2x3", not "box").
 * Every operator with a number on each side counts, so a chain
 * "100 - 50 - 30 - 15" is 3. GSM8K's calculator annotations "<<48/2=24>>"
 * repeat the operation just written, so they are removed before counting
 * ("48/2 = <<48/2=24>>24" is 1). Known over-counts: ranges ("5-10") and
 * dates ("1/2/2020") read as operations; signs ("3 - -2") do not count.
 */
double tmap_indicator_numeracy(const char *response);

/*
 * MTLD lexical diversity (McCarthy and Jarvis 2010), the mean length of the
 * word runs whose type-token ratio stays above 0.72.
 *
 * Words: runs of ASCII letters, digits, apostrophes and non-ASCII letters,
 * lowercased (ASCII only); U+2019 counts as an apostrophe, apostrophes at
 * either end of a word are dropped. A pass reads the words in order and closes
 * a factor as soon as the running TTR of the current factor is <= 0.72; the
 * remainder adds the partial factor (1 - ttr) / (1 - 0.72); the pass gives
 * words / factors. MTLD is the mean of the forward and the backward pass.
 *
 * Degenerate cases, as the LexicalRichness package treats them: no words
 * gives 0; a pass with 0 factors (every word distinct, so no factor closes
 * and the remainder's TTR is 1) counts one factor, so MTLD is the word count.
 */
double tmap_indicator_mtld(const char *text);

/*
 * The share of the prompt's terms that the response uses: a response that
 * answers its prompt names what the prompt names (a GSM8K solution uses
 * the question's numbers and nouns); one written for another prompt, or
 * off-task text, uses almost none of them.
 *
 * Words are split as for MTLD (lowercased); a term is a distinct word with
 * a digit in it or of at least 4 bytes. The value is (distinct prompt terms
 * the response also has) / (distinct prompt terms), in [0, 1]; NaN when the
 * prompt has no term (no value: neutral in the ranking) or memory runs out.
 * Scripts written without spaces (Chinese, Japanese) make one word of a
 * whole phrase, so their prompts have few terms and matches are rare.
 */
double tmap_indicator_coverage(const char *prompt, const char *response);

#endif
