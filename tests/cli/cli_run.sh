#!/usr/bin/env bash
# tmap run / learn / select end to end on a small GSM8K slice: every output,
# byte-identical reruns, selected lines identical to input lines, and
# `tmap select` reproducing the run's selection from its files.
. "$(dirname "$0")/lib.sh"

head -n 40 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 12 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 2 -n 4 --iters 5 -k 2 --draws 1
        --indicators loss,steps,length,numeracy --seed 3)

check "run writes every output and a summary"
run "$TMAP" run "${common[@]}" --out a
expect_status 0
for f in selected.jsonl scores.csv weights.json trace.csv tiny.jsonl report.html store.db; do
    expect_true test -s "a/$f"
done
expect_out "proxy, learned weights"
expect_out "report: a/report.html"
expect_out "selected                     12 of 40 (30%)"
expect_true grep -qE "40 computed, 0 from the store, [1-9][0-9]* tokens decoded" "$WORK/.out"
# A 4-million-parameter random model learns nothing in context: the run
# says its weights do not beat random subsets, and where to turn.
expect_out "does NOT beat random subsets by more than the noise"
expect_out 'what may help                --proxy finetune for a model that learns little in context; --indicators support,coverage for a pool with wrong or misaligned answers, with --proxy finetune or --search equal'
expect_out 'docs/fidelity.md, "When a run does not beat random"'
# report.html says the same, the advice included.
expect_true grep -q 'does NOT beat random subsets by more than the noise' a/report.html
expect_true grep -q 'what may help.*--proxy finetune for a model that learns little in context' a/report.html
# How many of the k demonstrations the learned subset's prompts hold.
expect_out "of the 2 asked for fit beside a tiny item (context 1024 tokens)"
expect_true grep -q '"proxy_demos": {' a/weights.json
for kv in '"asked": 8' '"held": 8' '"prompts": 4'; do expect_true grep -qE "^ *$kv,?\$" a/weights.json; done
expect_true test "$(wc -l < a/selected.jsonl)" -eq 12
expect_true grep -q '^id,hash,loss,steps,length,numeracy,rank_loss,rank_steps,rank_length,rank_numeracy,combined,selected$' a/scores.csv

check "every selected line is an input line"
while IFS= read -r line; do
    grep -qxF -- "$line" pool.jsonl || { bad "not an input line: ${line:0:60}"; break; }
done < a/selected.jsonl
ok

check "same seed, same bytes; a rerun does no model work"
run "$TMAP" run "${common[@]}" --out b
expect_status 0
expect_true cmp -s a/selected.jsonl b/selected.jsonl
expect_true cmp -s a/weights.json b/weights.json
run "$TMAP" run "${common[@]}" --out a
expect_out "0 computed, 40 from the store, 0 tokens decoded"
# A text-only indicator new to the store is computed for every sample, but
# the model values come from the store: nothing is decoded.
run "$TMAP" run "${common[@]/numeracy/numeracy,coverage}" --cache a/store.db --out cov
expect_status 0
expect_out "40 computed, 0 from the store, 0 tokens decoded"

check "tmap select reproduces the selection from scores.csv and weights.json"
run "$TMAP" select -d pool.jsonl --scores a/scores.csv --weights a/weights.json --ratio 0.3 -o again.jsonl
expect_status 0
expect_true cmp -s a/selected.jsonl again.jsonl

check "filter selection: a seeded draw from all but the lowest --drop"
run "$TMAP" run "${common[@]}" --out f --select filter --drop 0.5
expect_status 0
expect_out "drawn at random from all but the lowest 50%"
expect_true test "$(wc -l < f/selected.jsonl)" -eq 12
expect_true grep -q '"select": "filter"' f/weights.json
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights f/weights.json --select filter --drop 0.5 \
    --seed 3 -o f-again.jsonl
expect_status 0
expect_true cmp -s f/selected.jsonl f-again.jsonl
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights f/weights.json --select filter --drop 0.8
expect_status 1
expect_err "drop 0.8 with ratio 0.3"

check "tmap select repeats the recorded selection without its flags; a flag wins"
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights f/weights.json -o f-recorded.jsonl
expect_status 0
expect_true cmp -s f/selected.jsonl f-recorded.jsonl
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights f/weights.json --select top -o f-top.jsonl \
    --table f-top.csv
expect_status 0
# a top selection: every selected combined score at least every other one
expect_true awk -F, 'NR > 1 { if ($NF == 1) { if (min == "" || $(NF-1) < min) min = $(NF-1) }
                               else if (max == "" || $(NF-1) > max) max = $(NF-1) }
                     END { exit !(min >= max) }' f-top.csv
expect_true test "$(cat f-top.jsonl)" != "$(cat f/selected.jsonl)"
sed 's/"select": "filter"/"select": "sideways"/' f/weights.json > bad-select.json
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights bad-select.json
expect_status 2
expect_err "bad-select.json: config.select \"sideways\" is not one of top, filter"
check "a hand-written weights file: each mistake named, with the file"
bad_weights() { # FILE JSON STATUS MESSAGE
    printf '%s\n' "$2" > "$1"
    run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights "$1" -o never.jsonl
    expect_status "$3"
    expect_err "$4"
}
bad_weights w-shape.json '{"weights": {"quality": 1}}' 2 'w-shape.json: no "indicators" list; tmap learn and tmap run write one'
bad_weights w-syntax.json '{"indicators": [' 2 "w-syntax.json:2: not valid JSON: ']' expected"
bad_weights w-zero.json '{"indicators": [{"name": "quality", "weight": 0}]}' 2 'w-zero.json: every weight is 0'
bad_weights w-dir.json '{"indicators": [{"name": "quality", "weight": 1, "direction": "up"}]}' 2 \
    'w-dir.json: indicator "quality": direction must be "higher" or "lower"'
bad_weights w-twice.json '{"indicators": [{"name": "quality", "weight": 1}, {"name": "quality", "weight": 2}]}' 2 \
    'w-twice.json: indicator "quality" is listed twice'
bad_weights w-typo.json '{"indicators": [{"name": "qualty", "weight": 1}]}' 2 \
    'the weights name "qualty", which the scores do not hold (they hold: '
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights nothere.json -o never.jsonl
expect_status 3
expect_err "nothere.json: cannot open: No such file or directory"
expect_true test ! -e never.jsonl

check "an output that is one of the inputs is refused before anything is written"
cp pool.jsonl pool.keep
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights f/weights.json -o pool.jsonl
expect_status 1
expect_err "-o pool.jsonl is the same file as -d pool.jsonl: writing it would destroy the input"
ln -s pool.jsonl pool-link.jsonl       # another name for the same file
run "$TMAP" tiny -m "$MODEL" -d pool-link.jsonl -n 4 -o ./pool.jsonl
expect_status 1
expect_err "-o ./pool.jsonl is the same file as -d pool-link.jsonl"
run "$TMAP" select -d pool.jsonl --scores f/scores.csv --weights f/weights.json -o x.jsonl --table x.jsonl
expect_status 1
expect_err "-o x.jsonl and --table x.jsonl are the same file"
cp f/selected.jsonl f-selected.keep    # a second run on the first one's selection, into the same folder
run "$TMAP" run -m "$MODEL" -d f/selected.jsonl --val val.jsonl --out f
expect_status 1
expect_err "--out f/selected.jsonl is the same file as -d f/selected.jsonl"
expect_true cmp -s pool.jsonl pool.keep
expect_true cmp -s f/selected.jsonl f-selected.keep
expect_true test ! -e x.jsonl

check "a scores file that does not fit the pool: refused, naming the line"
bad_scores() { # FILE STATUS MESSAGE (the file already written)
    run "$TMAP" select -d pool.jsonl --scores "$1" --weights f/weights.json -o never.jsonl
    expect_status "$2"
    expect_err "$3"
}
head -1 f/scores.csv > s-empty.csv
bad_scores s-empty.csv 2 "s-empty.csv: a header and no rows"
sed 3d f/scores.csv > s-hole.csv           # the second record's row gone
bad_scores s-hole.csv 2 "s-hole.csv has no row for 1 of the 40 records of pool.jsonl (the first: "
{ cat f/scores.csv; sed -n 2p f/scores.csv; } > s-twice.csv
bad_scores s-twice.csv 2 "s-twice.csv:42: id "
expect_err "again (first on line 2)"
sed '4s/"question": "/"question": "Edited. /' pool.jsonl > edited.jsonl   # the run's hash column sees it
run "$TMAP" select -d edited.jsonl --scores f/scores.csv --weights f/weights.json -o never.jsonl
expect_status 2
expect_err 'f/scores.csv:5: record "4" has changed since it was scored (edited.jsonl:4 holds other text)'
expect_true test ! -e never.jsonl

check "a pretty-printed JSON array in, one JSON record per output line"
# Alpaca ships alpaca_data.json this way: one key per line, 2-space indent.
to_array() {
    awk 'BEGIN { print "[" } { line = $0; sub(/^\{/, "{\n    ", line); gsub(/", "/, "\",\n    \"", line);
         sub(/\}$/, "\n  }", line); printf "%s  %s", (NR > 1 ? ",\n" : ""), line } END { print "\n]" }' "$1"
}
to_array pool.jsonl > pool.json
to_array val.jsonl > val.json
run "$TMAP" run -m "$MODEL" -d pool.json --val val.json -c 1024 -b 512 -t 2 -n 4 --iters 3 -k 2 --draws 1 \
    --indicators loss,steps --seed 3 --out arr --quiet
expect_status 0
expect_true test "$(wc -l < arr/selected.jsonl)" -eq 12
expect_true test "$(wc -l < arr/tiny.jsonl)" -eq 4
for f in selected tiny; do
    run "$TMAP" data stats "arr/$f.jsonl"   # fails on any line that is not one JSON record
    expect_status 0
    expect_out "rejected   0"
done

check "validation the pool repeats: said on stderr, in the summary, weights.json and the report"
# Two pool records (one re-saved with CRLF and padding, which its hash
# ignores) lead a validation file: their copies in the pool could be drawn
# as their own demonstrations.
{ sed -n 5p pool.jsonl; sed -n 9p pool.jsonl | sed 's/"question": "/"question": "  /; s/$/\r/'; cat val.jsonl; } > leak.jsonl
run "$TMAP" run "${common[@]/val.jsonl/leak.jsonl}" --out leak --search equal --baselines 1 --redraws 1
expect_status 0
expect_out "validation: WARNING          2 of the 14 records of leak.jsonl ask a question the pool also holds (2 with the same answer; 2 pool records; the first: line 1): the proxy never draws them as demonstrations, but relevance scores them highest"
expect_err "tmap: note: 2 of the 14 records of leak.jsonl ask a question the pool also holds"
expect_true grep -q '"val_in_pool":{"pool_records":2,"prompts":2,"records":2}' <(tr -d ' \n' < leak/weights.json)
expect_true grep -q 'validation in the pool: WARNING.*2 of the 14 records of leak.jsonl' leak/report.html
# The same question with another answer still leaks the question.
{ sed -n 5p pool.jsonl | sed 's/#### [0-9]*/#### 999/'; head -n 1 val.jsonl; } > leak-tiny.jsonl
run "$TMAP" proxy -m "$MODEL" --demos-from pool.jsonl --tiny leak-tiny.jsonl -k 2 -c 1024 --quiet
expect_status 0
expect_err "tmap: warning: 1 of the 2 records of leak-tiny.jsonl ask a question the pool also holds (0 with the same answer; 1 pool record; the first: line 1)"
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores a/scores.csv --tiny leak-tiny.jsonl --iters 2 -k 2 --draws 1 \
    -c 1024 --quiet -o leak-weights.json --trace leak-trace.csv
expect_status 0
expect_err "tmap: warning: 1 of the 2 records of leak-tiny.jsonl ask a question the pool also holds"

check "learn alone"
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators loss,steps -o s.csv -c 1024 --quiet
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 4 -k 2 --draws 1 -c 1024 --quiet
expect_status 0
expect_out "proxy"
expect_no_err
expect_out 'what may help: --proxy finetune'   # in the result, --quiet or not
expect_true test -s weights.json
expect_true test -s trace.csv
expect_true grep -q '"select": "top"' weights.json   # learn records its selection too

check "learn on the fine-tune proxy: what may help names the indicators, not the proxy it already uses"
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 2 -k 2 --draws 1 -c 1024 \
    --proxy finetune --ft-records 4 --baselines 2 --redraws 2 --seed 7 --weights ft.json --trace ft-trace.csv --quiet
expect_status 0
# Seed 7 lands within the noise on this model (seed 3 beats random by 5.6
# sd). The verdict depends on llama.cpp's arithmetic, so the check follows
# whichever it is: a run that does not beat (or loses to) random gets the indicators
# hint and never the proxy it already uses; one that beats gets no hint
# (test_learn test_baselines_advice checks every case of the rule itself).
if grep -qE "does (NOT beat|WORSE than) random subsets" "$WORK/.out"; then
    expect_out 'what may help: --indicators support,coverage for a pool with wrong or misaligned answers, or those two with --search equal'
    expect_true test "$(grep -c 'what may help: --proxy' "$WORK/.out")" -eq 0
else
    echo "  note: seed 7 now beats random on this build; checking that no hint follows"
    expect_out "beats random subsets by more than the noise"
    expect_true test "$(grep -c 'what may help' "$WORK/.out")" -eq 0
fi

check "the fine-tune proxy trains only --train-layers' tensors; the in-context proxy refuses the option"
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 1 --draws 1 -c 1024 \
    --proxy finetune --ft-records 4 --train-layers output --baselines 0 --redraws 0 --weights ftl.json --quiet
expect_status 0
expect_true grep -q '"ft_layers": "output"' ftl.json
expect_true grep -q '"ft_layers": null' ft.json   # every tensor
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 1 --train-layers output \
    --weights icl.json --quiet
expect_status 1
expect_err "--train-layers 'output' applies to the fine-tune proxy only (--proxy finetune)"
expect_true test ! -e icl.json
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 1 --proxy finetune \
    --train-layers 40-41 --weights bad.json --quiet
expect_status 1
expect_err "--proxy finetune trains the model: --train-layers '40-41':"
expect_true test ! -e bad.json

check "a run already on the two cleaning indicators is not pointed at them again"
run "$TMAP" run -m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 2 -n 4 --iters 5 -k 2 --draws 1 \
    --indicators support,coverage --seed 5 --out sc --quiet
expect_status 0
# Seed 5: 0.1 sd better than random on this model (seeds 3 and 7: 1.4 and -0.5).
expect_out "does NOT beat random subsets by more than the noise"
expect_out 'what may help                --proxy finetune for a model that learns little in context, or --search equal'
expect_true test "$(grep -c -- '--indicators' "$WORK/.out")" -eq 0
expect_true grep -q 'what may help.*--proxy finetune for a model that learns little in context, or --search equal' sc/report.html

check "stratified selection: learned, recorded in weights.json, repeated by tmap select"
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 3 -k 2 --draws 1 -c 1024 \
    --select stratified --strata 4 --quiet
expect_status 0
expect_true grep -q '"select": "stratified"' weights.json
expect_true grep -qE '^ *"strata": 4,?$' weights.json
run "$TMAP" select -d pool.jsonl --scores s.csv --weights weights.json -o st-recorded.jsonl
expect_status 0
run "$TMAP" select -d pool.jsonl --scores s.csv --weights weights.json --select stratified --strata 4 -o st.jsonl
expect_status 0
expect_true cmp -s st.jsonl st-recorded.jsonl
expect_true test "$(wc -l < st.jsonl)" -eq 12
run "$TMAP" select -d pool.jsonl --scores s.csv --weights weights.json --strata 0 -o st0.jsonl
expect_status 1

check "--search equal: no search, equal weights, the same rows as tmap select with an equal-weights file"
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 4 -k 2 --draws 1 -c 1024 \
    --search equal --weights eq.json --trace eq-trace.csv --quiet
expect_status 0
# Nothing was searched, so no search setting is suggested.
expect_true test "$(grep -c 'what may help' "$WORK/.out")" -eq 0
expect_true grep -q '"search": "equal"' eq.json
expect_true test "$(grep -cE '"weight": 0\.5,?$' eq.json)" -eq 2
expect_true test "$(wc -l < eq-trace.csv)" -eq 2    # the header and one evaluation
expect_true grep -qE '^0,0\.5,0\.5,' eq-trace.csv
echo '{"indicators": [{"name": "loss", "weight": 1}, {"name": "steps", "weight": 1}]}' > eq-hand.json
run "$TMAP" select -d pool.jsonl --scores s.csv --weights eq-hand.json -o eq-hand.jsonl
expect_status 0
run "$TMAP" select -d pool.jsonl --scores s.csv --weights eq.json -o eq-sel.jsonl
expect_status 0
expect_true cmp -s eq-sel.jsonl eq-hand.jsonl

check "a pool with one possible subset: the search stops early and says so"
# Two records at --ratio 1: every weighting selects both, so after the first
# evaluation every one is reused; the search stops after --iters of those
# in a row (it used to go on to 10 x --iters, each a GP fit).
head -n 2 pool.jsonl > two.jsonl
run "$TMAP" run -m "$MODEL" -d two.jsonl --val val.jsonl -c 1024 -b 512 -t 2 -n 2 --iters 6 -k 2 --draws 1 \
    --indicators loss,steps,length,numeracy --ratio 1 --seed 3 --out two
expect_status 0
expect_out "7 evaluations (1 spent)"
expect_out "selected                     2 of 2 (100%)"
expect_out "stopped early: no new subset in the last --iters evaluations"
expect_true grep -q 'stopped early' two/report.html
# The baseline line blames the pool, not the proxy, and so does the advice.
expect_out "the selection keeps every distinct record of the pool (2), so all weightings select the same subset"
expect_out "what may help                a pool with more distinct records than the selection keeps"
expect_true grep -q '"no_choice": *true' two/weights.json
expect_true test "$(wc -l < two/trace.csv)" -eq 8    # the header and 7 evaluations
run "$TMAP" learn -m "$MODEL" -d two.jsonl --scores two/scores.csv --tiny two/tiny.jsonl --iters 6 -k 2 --draws 1 \
    -c 1024 --ratio 1 --weights two-w.json --trace two-t.csv
expect_status 0
expect_out "7 evaluations (1 spent; stopped early"

check "--on-error skip: both inputs' bad records in one rejects file, and the summary says so"
{ cat pool.jsonl; echo '{"question": "cut'; } > bad-pool.jsonl
{ cat val.jsonl; echo 'not json'; } > bad-val.jsonl
common_val=("${common[@]/val.jsonl/bad-val.jsonl}")
run "$TMAP" run "${common_val[@]/pool.jsonl/bad-pool.jsonl}" --out sk --cache a/store.db --search equal --on-error skip
expect_status 0
expect_out "pool                         40 records; 1 bad record set aside in bad-pool.jsonl.rejects.jsonl"
expect_out "validation                   12 items -> 4 anchors; 1 bad record set aside in bad-pool.jsonl.rejects.jsonl"
expect_true test "$(wc -l < bad-pool.jsonl.rejects.jsonl)" -eq 2
expect_true grep -q '"file": *"bad-pool.jsonl", *"line": *41' bad-pool.jsonl.rejects.jsonl
expect_true grep -q '"file": *"bad-val.jsonl", *"line": *13' bad-pool.jsonl.rejects.jsonl
expect_true test ! -e bad-val.jsonl.rejects.jsonl

check "bad input"
run "$TMAP" run -m "$MODEL" -d pool.jsonl --out x
expect_status 1
expect_err "needs -m MODEL, -d POOL, --val VAL and --out DIR"
# tmap learn in a folder where no step has run: which command writes what.
mkdir -p fresh
run env -C fresh "$TMAP" learn -m "$MODEL" -d ../pool.jsonl
expect_status 1
expect_err "no --scores given and no scores.csv here: \`tmap score -m MODEL -d POOL -o scores.csv\` writes it"
run env -C fresh "$TMAP" learn -m "$MODEL" -d ../pool.jsonl --scores ../a/scores.csv
expect_status 1
expect_err "no --tiny given and no tiny.jsonl here: \`tmap tiny -m MODEL -d VAL -o tiny.jsonl\` writes it"
run "$TMAP" run "${common[@]}" --out x --ratio 0
expect_status 1
run "$TMAP" select -d pool.jsonl --scores a/scores.csv --weights nothere.json
expect_status 3
expect_err "nothere.json"
run "$TMAP" run "${common[@]}" --out pool.jsonl
expect_status 3
expect_err "pool.jsonl: exists and is not a folder"
# A context past the model's training runs, and the summary and the report
# say what that costs (the test model was trained on 2,048 tokens), for
# the judge and the embedder too, which run at the target's -c; stderr
# says it at the start, once per model.
run "$TMAP" run "${common[@]}" --out wide -c 4096 --search equal --judge "$MODEL" --embed-model "$MODEL"
expect_status 0
expect_out "context: WARNING             a context of 4096 tokens is beyond the 2048 the model was trained on"
expect_out "judge context: WARNING       $MODEL: a context of 4096 tokens is beyond the 2048"
expect_out "embedder context: WARNING    $MODEL: a context of 4096 tokens is beyond the 2048"
expect_true grep -q 'context: WARNING.*beyond the 2048 the model was trained on' wide/report.html
expect_true grep -q 'the embedder: a context of 4096 tokens' wide/report.html
expect_true test "$(grep -c "tmap: note: $MODEL: a context of 4096 tokens is beyond" "$WORK/.err")" -eq 3
run "$TMAP" run "${common[@]}" --out a --quiet   # nor a validation file the pool repeats
expect_status 0
expect_true test "$(grep -c 'WARNING' "$WORK/.out")" -eq 0
# Lowering -k cannot help a context too short for any item alone.
run "$TMAP" run "${common[@]}" --out short -c 24
expect_status 2
expect_err "no tiny item fits the context (24 tokens) even without demonstrations"

finish
