/*
 * corrupt.h - known corruption injected into a GSM8K pool, for
 * bench/fidelity: a selection method is only as good as what it keeps out,
 * and a pool whose bad records are labelled lets that be counted.
 *
 * Five kinds, in equal shares of the corrupted records, each a defect real
 * instruction pools carry:
 *   wrong_answer  the solution stands but the final "#### N" is another number
 *   truncated     the solution is cut off partway, with no final answer
 *   swapped       the answer belongs to another question of the pool
 *   off_task      the answer is unrelated text
 *   duplicate     an exact copy of an earlier clean record
 * Everything is a function of the input lines and the seed.
 */
#ifndef TMAP_BENCH_CORRUPT_H
#define TMAP_BENCH_CORRUPT_H

#include <stddef.h>
#include <stdint.h>

enum fid_kind {
    FID_CLEAN = 0,
    FID_WRONG_ANSWER,
    FID_TRUNCATED,
    FID_SWAPPED,
    FID_OFF_TASK,
    FID_DUPLICATE,
    FID_N_KINDS,
};

const char *fid_kind_name(enum fid_kind kind);

struct fid_record {
    char         *line;   /* the JSONL line written to the pool (no newline), malloc'd */
    enum fid_kind kind;
    size_t        source; /* swapped: whose answer; duplicate: the record copied; else its own index */
};

/* Corrupts round(rate * n) of the n GSM8K JSONL lines (records with
 * "question" and "answer"), the kinds in equal shares (the remainder to the
 * first kinds in enum order), and fills out[0..n) in input order: clean
 * records keep their line byte for byte. Duplicates copy a clean record
 * that comes earlier, so the first copy in file order is always the
 * original. Returns 0, or -1 with a message in errbuf (a line that is not
 * a GSM8K record, out of memory). */
int fid_corrupt(const char *const *lines, size_t n, double rate, uint64_t seed, struct fid_record *out,
                char *errbuf, size_t errsize);

void fid_records_free(struct fid_record *r, size_t n);

#endif
