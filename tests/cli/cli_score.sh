#!/usr/bin/env bash
# tmap score end to end: outputs, the store serving a rerun, a killed run
# resuming to identical scores, the dry run, the progress line on a
# terminal, and bad input.
. "$(dirname "$0")/lib.sh"

head -n 30 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 10 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 512 -b 512 -t 2 --batch-samples 8)

check "scores every indicator"
run "$TMAP" score "${common[@]}" --cache s.db -o scores.csv
expect_status 0
expect_err "scored 30 samples: 30 computed, 0 from the store, 0 skipped"
expect_err "wrote scores.csv"
expect_true test "$(wc -l < scores.csv)" -eq 31
expect_true grep -q '^id,line,hash,loss,ifd,quality,complexity,diversity,relevance,steps,length,lexical,numeracy,support$' scores.csv
expect_true grep -q '^1,1,' scores.csv

check "tmap select on these scores; a record edited since is refused"
printf '{"indicators": [{"name": "quality", "weight": 1}]}\n' > w.json
run "$TMAP" select -d pool.jsonl --scores scores.csv --weights w.json --ratio 0.5 -o sel.jsonl
expect_status 0
expect_true test "$(wc -l < sel.jsonl)" -eq 15
sed '4s/"question": "/"question": "Edited. /' pool.jsonl > edited.jsonl
run "$TMAP" select -d edited.jsonl --scores scores.csv --weights w.json -o never.jsonl
expect_status 2
expect_err 'scores.csv:5: record "4" has changed since it was scored (edited.jsonl:4 holds other text)'
expect_true test ! -e never.jsonl

check "a rerun is served from the store"
run "$TMAP" score "${common[@]}" --cache s.db -o again.csv
expect_status 0
expect_err "30 from the store"
expect_err "0 tokens in 0 decode calls"
expect_true cmp -s scores.csv again.csv

check "length and the text indicators decode nothing, and give the full run's values"
# length counts the response's tokens: tokenizing is all it needs (it used
# to decode every sample as loss does).
run "$TMAP" score -m "$MODEL" -d pool.jsonl -c 512 -t 2 --indicators steps,length,lexical,numeracy -o text.csv
expect_status 0
expect_err "30 computed, 0 from the store, 0 skipped; 0 tokens in 0 decode calls"
expect_true cmp -s text.csv <(cut -d, -f1-3,10-13 scores.csv)

check "the thread count changes no value, at the default batch too"
# At -b 2048 the ratings of these 40 records make a call of 513 tokens,
# whose last micro-batch holds one token: llama.cpp's CPU flash attention
# splits such a token's cache among the threads, and its values moved with
# -t until tmap_model_decode gave it a companion.
head -n 40 "$SRC/data/gsm8k/train.jsonl" > pool40.jsonl
for t in 1 2; do
    run "$TMAP" score -m "$MODEL" -d pool40.jsonl --indicators quality,complexity -t $t -o ratings-t$t.csv
    expect_status 0
done
expect_true cmp -s ratings-t1.csv ratings-t2.csv

check "two lanes (--lanes 2) give one lane's scores; a third is refused"
# Same values to within float rounding: the lanes batch the records
# differently. Columns 1-3 (id, line, hash) must match exactly.
run "$TMAP" score "${common[@]}" --lanes 2 -o lanes.csv
expect_status 0
expect_true test "$(cut -d, -f1-3 lanes.csv)" = "$(cut -d, -f1-3 scores.csv)"
expect_true awk -F, 'NR == FNR { for (i = 4; i <= NF; i++) v[FNR, i] = $i; next }
    FNR > 1 { for (i = 4; i <= NF; i++) { d = $i - v[FNR, i]; if (d < 0) d = -d
              if (d > 1e-3 * (1 + ($i < 0 ? -$i : $i))) { print "row " FNR " column " i ": " $i " vs " v[FNR, i] > "/dev/stderr"; bad = 1 } } }
    END { exit bad }' scores.csv lanes.csv
run "$TMAP" score "${common[@]}" --lanes 3 -o never.csv
expect_status 1
expect_err "--lanes"
expect_true test ! -e never.csv

check "kill -9 mid-run, rerun: identical scores"
# The kill must land mid-run: some batches stored, not all (a run that
# finished first, or died before storing anything, proves nothing). The
# rerun's counts tell which happened; the delay adapts until it lands.
landed=0
delay=0.4
for try in 1 2 3 4 5 6 7 8; do
    rm -f k.db k.db-wal k.db-shm
    # Each batch half a second longer (src/util/fault.h): on a GPU the whole
    # run computes in under a second, less than its start varies under load,
    # and the kill never landed between two batches.
    TMAP_FAULT_SLOW=score-batch:0.5 "$TMAP" score "${common[@]}" --cache k.db -o killed.csv --quiet &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    run "$TMAP" score "${common[@]}" --cache k.db -o resumed.csv
    read -r computed stored < <(sed -nE 's/.*scored 30 samples: ([0-9]+) computed, ([0-9]+) from the store.*/\1 \2/p' "$WORK/.err")
    if [ "${stored:-0}" -gt 0 ] && [ "${computed:-0}" -gt 0 ]; then
        landed=1
        break
    fi
    if [ "${stored:-0}" -eq 0 ]; then delay=$(awk -v d="$delay" 'BEGIN { print d * 2 }')
    else delay=$(awk -v d="$delay" 'BEGIN { print d / 2 }'); fi
done
expect_status 0
expect_true test "$landed" -eq 1
expect_true cmp -s scores.csv resumed.csv

check "dry run"
run "$TMAP" score "${common[@]}" --dry-run
expect_status 0
expect_out "tokens to decode"
expect_out "estimated time"
expect_true test ! -e scores-dry.csv

check "--no-repack: the same scores from plain weights (an F32 model has none to repack)"
run "$TMAP" score "${common[@]}" --no-repack -o plain.csv
expect_status 0
expect_err "30 computed"
expect_true cmp -s scores.csv plain.csv
run "$TMAP" score "${common[@]}" --no-repack=1 -o plain.csv
expect_status 1
expect_err "--no-repack takes no value"

check "progress line on a terminal only"
run script -qec "$TMAP score ${common[*]} --indicators loss -o tty.csv" /dev/null
expect_status 0
expect_out "samples/s"
expect_out "ETA"
run "$TMAP" score "${common[@]}" --indicators loss -o notty.csv
expect_true test "$(grep -c ETA "$WORK/.err")" -eq 0

check "--judge and --embed-model load other models"
run "$TMAP" score "${common[@]}" --indicators quality,diversity -o plain.csv
run "$TMAP" score "${common[@]}" --indicators quality,diversity --judge "$MODEL" --embed-model "$MODEL" -o judged.csv
expect_status 0
expect_true cmp -s plain.csv judged.csv  # the same GGUF as judge and embedder: the same values

check "a response longer than the context: skipped and named, again when it comes from the store"
{ head -n 2 pool.jsonl
  printf '{"question": "Count.", "answer": "%s\\n#### 7"}\n' "$(printf 'one two three %.0s' $(seq 200))"; } > long.jsonl
for again in first rerun; do
    run "$TMAP" score -m "$MODEL" -d long.jsonl -c 256 --indicators loss,length --cache long.db -o long.csv
    expect_status 0
    expect_err "long.jsonl:3: sample 3: "
    expect_err "3 samples: "
    expect_err ", 1 skipped;"
done
expect_true grep -qE '^3,3,[0-9a-f]{32},,[0-9]+$' long.csv

check "a context beyond the model's training: scored, with a warning naming both sizes"
# The test model was created with a 2,048-token context (--ctx's default);
# -c 4096 runs, but positions past 2,048 are ones it never saw.
run "$TMAP" score -m "$MODEL" -d long.jsonl -c 4096 --indicators length,loss -o wide.csv --quiet
expect_status 0
expect_err "tmap: warning: $MODEL: a context of 4096 tokens is beyond the 2048 the model was trained on"
expect_err "(-c 2048 or less)"
run "$TMAP" score -m "$MODEL" -d long.jsonl -c 2048 --indicators length,loss -o wide.csv --quiet
expect_status 0
expect_no_err

check "relevance without --val says so"
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators relevance,steps -o r.csv
expect_status 0
expect_err "relevance needs validation data (--val)"

check "bad input"
run "$TMAP" score -d pool.jsonl
expect_status 1
expect_err "no model given"
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators loss,fun
expect_status 1
expect_err "unknown indicator 'fun'"
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators loss,ifd,loss
expect_status 1
expect_err "indicator 'loss' is named twice in 'loss,ifd,loss'"
run "$TMAP" score -m "$MODEL" -d nothere.jsonl
expect_status 3
expect_err "nothere.jsonl: cannot open"
run "$TMAP" score -m "$MODEL" -d pool.jsonl -c -5
expect_status 1
expect_err "-c: -5 is out of range [0, 1048576]"
run "$TMAP" score -m pool.jsonl -d "$MODEL"     # the two swapped: one line that says so
expect_status 2
expect_err "a GGUF model, not data: did -m and -d change places?"
expect_true test "$(wc -l < "$WORK/.err")" -eq 1
printf 'id,reward\n77,1\n' > extra.csv
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators steps --extra extra.csv
expect_status 2
expect_err 'extra.csv:2: id "77" is not in pool.jsonl'
printf 'not a database at all, just text\n' > bad.db
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators steps --cache bad.db
expect_status 3
expect_err "bad.db"

check "an output that is not a regular file (a FIFO, /dev/null) is written in place, never replaced"
# Renamed over, a FIFO would become a plain file and its reader would wait
# forever; run as root, -o /dev/null replaced the machine's /dev/null.
mkfifo out.fifo
( timeout 60 cat out.fifo > from-fifo.csv ) &
reader=$!
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators steps,lexical -o out.fifo
expect_status 0
wait $reader
expect_true test -p out.fifo
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators steps,lexical -o regular.csv
expect_true cmp -s from-fifo.csv regular.csv
expect_true test "$(ls | grep -c '\.tmp\.')" -eq 0

check "a chat template llama.cpp cannot apply: exit 4 naming the model, whichever thread tokenizes"
"$TMAP" model create --quiet --out weird.gguf --n-embd 16 --n-layer 1 --chat-template '{{ nonsense }}'
for what in length length,loss; do
    run "$TMAP" score -m weird.gguf -d pool.jsonl --template chat --indicators $what -o w.csv -t 2
    expect_status 4
    expect_err "weird.gguf: llama.cpp cannot apply this model's chat template"
    expect_true test "$(wc -l < "$WORK/.err")" -eq 1
    expect_true test ! -e w.csv
done

check "an empty response: said as such, not as a context too short, from the store too"
{ head -n 2 pool.jsonl; echo '{"question": "What is 2+2?", "answer": ""}'; } > empty.jsonl
# With diversity the empty response is decoded for its embedding, not
# skipped: the first run must still tell it.
for run in loss,length:first loss,length:again loss,length,diversity:first loss,length,diversity:again; do
    [ "${run#*:}" = first ] && rm -f empty.db
    run "$TMAP" score -m "$MODEL" -d empty.jsonl --indicators "${run%:*}" --cache empty.db -o empty.csv
    expect_status 0
    expect_err "empty.jsonl:3: sample 3: its response is empty: nothing to score, so its model indicators are left empty"
    expect_err ", 1 skipped (1 with an empty response);"
    expect_true test "$(grep -c "do not fit\|does not fit" "$WORK/.err")" -eq 0
done

check "a record repeated in its own batch and in a later one: the first's values, counted apart; a rerun the same bytes"
# Rows 2 and 5 repeat row 1 (batches of 4: row 2 in row 1's batch, row 5
# in the next). Decoded beside other sequences, a repeat used to differ
# from its first in the last digits, and the store (keyed by content)
# then served the later value for both on a rerun.
{ head -n 1 pool.jsonl; head -n 1 pool.jsonl; sed -n 2,3p pool.jsonl; head -n 1 pool.jsonl; sed -n 4,6p pool.jsonl; } > repeats.jsonl
for pass in first again; do
    run "$TMAP" score -m "$MODEL" -d repeats.jsonl --val val.jsonl -c 512 -t 2 --batch-samples 4 \
        --indicators loss,ifd,diversity,relevance,length --cache repeats.db -o "repeats-$pass.csv"
    expect_status 0
    expect_true test "$(cut -d, -f3- "repeats-$pass.csv" | sed -n '2p;3p;6p' | sort -u | wc -l)" -eq 1
done
expect_err "scored 8 samples: 0 computed, 6 from the store, 2 repeating an earlier sample, 0 skipped"
expect_true cmp -s repeats-first.csv repeats-again.csv

check "validation data the pool repeats: relevance would favour the copies, and score says so"
{ sed -n 7p pool.jsonl; cat val.jsonl; } > leak.jsonl
run "$TMAP" score -m "$MODEL" -d pool.jsonl --val leak.jsonl --indicators steps -o leak.csv --quiet
expect_status 0
expect_err "tmap: warning: 1 of the 11 records of leak.jsonl ask a question the pool also holds (1 with the same answer; 1 pool record; the first: line 1)"
run "$TMAP" score -m "$MODEL" -d pool.jsonl --val val.jsonl --indicators steps -o clean.csv --quiet
expect_status 0
expect_no_err

finish
