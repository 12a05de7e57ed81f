#!/usr/bin/env bash
# tmap data stats on the bundled GSM8K and on every kind of bad input: each
# gives its file:line message and the exit status of its kind.
. "$(dirname "$0")/lib.sh"

check "GSM8K train: 7473 records, all gsm8k, none rejected"
run "$TMAP" data stats "$SRC/data/gsm8k/train.jsonl"
expect_status 0
expect_out "records    7473"
expect_out "rejected   0"
expect_out "formats    gsm8k=7473"
expect_out "prompt chars"
run "$TMAP" data stats "$SRC/data/gsm8k/train.jsonl" --json
expect_out '"records": 7473, "rejected": 0'
expect_out '"formats": {"gsm8k": 7473}'

check "token lengths with a model"
run "$TMAP" data stats "$SRC/data/gsm8k/test.jsonl" -m "$MODEL"
expect_status 0
expect_out "records    1319"
expect_out "prompt tokens"
expect_out "response tokens"

good='{"question": "What is 2+2?", "answer": "2+2=4\n#### 4"}'

check "truncated JSON"
printf '%s\n{"question": "cut' "$good" > trunc.jsonl
run "$TMAP" data stats trunc.jsonl
expect_status 2
expect_err "trunc.jsonl:2: invalid JSON"
expect_err "1 bad records in trunc.jsonl"

check "wrong type"
printf '%s\n{"question": "q", "answer": 4}\n' "$good" > types.jsonl
run "$TMAP" data stats types.jsonl
expect_status 2
expect_err "types.jsonl:2:"
expect_err '"answer"'

check "blank lines are skipped with a note"
printf '%s\n\n%s\n   \n' "$good" "$good" > blank.jsonl
run "$TMAP" data stats blank.jsonl
expect_status 0
expect_out "records    2"
expect_err "blank.jsonl:2: blank line skipped"
run "$TMAP" data stats --quiet blank.jsonl
expect_no_err

check "UTF-8 byte-order mark"
printf '\xef\xbb\xbf%s\n' "$good" > bom.jsonl
run "$TMAP" data stats bom.jsonl
expect_status 0
expect_out "records    1"
expect_err "bom.jsonl:1: UTF-8 byte-order mark skipped"

check "invalid UTF-8"
printf '%s\n{"question": "caf\xe9", "answer": "#### 1"}\n' "$good" > latin1.jsonl
run "$TMAP" data stats latin1.jsonl
expect_status 2
expect_err "latin1.jsonl:2:"
expect_err "UTF-8"

check "a 10 MB line"
{ printf '{"question": "'; head -c 10485760 /dev/zero | tr '\0' 'x'; printf '", "answer": "#### 1"}\n'; } > huge.jsonl
run "$TMAP" data stats huge.jsonl
expect_status 2
expect_err "huge.jsonl:1: record is"
expect_err "max_record_bytes"
run "$TMAP" data stats huge.jsonl --max-record-bytes 20000000
expect_status 0
expect_out "records    1"

check "missing required field"
printf '{"instruction": "Say hi"}\n' > missing.jsonl
run "$TMAP" data stats missing.jsonl
expect_status 2
expect_err "missing.jsonl:1:"
expect_err "output"

check "unknown format names the keys"
printf '{"foo": 1, "bar": 2}\n' > unknown.jsonl
run "$TMAP" data stats unknown.jsonl
expect_status 2
expect_err "unknown.jsonl:1: no known format"
expect_err "--fields"

check "empty file"
: > empty.jsonl
run "$TMAP" data stats empty.jsonl
expect_status 2
expect_err "empty.jsonl"
expect_err "no records"

check "missing file and a directory"
run "$TMAP" data stats nothere.jsonl
expect_status 3
expect_err "nothere.jsonl: cannot open: No such file or directory"
mkdir adir
run "$TMAP" data stats adir
expect_status 3
expect_err "adir"

check "--on-error skip keeps going and writes every reject"
printf '%s\n{"question": "cut\n%s\n{"x": 1}\n' "$good" "$good" > mixed.jsonl
run "$TMAP" data stats mixed.jsonl --on-error skip
expect_status 0
expect_out "records    2"
expect_out "rejected   2"
expect_err "mixed.jsonl: 2 bad records set aside in mixed.jsonl.rejects.jsonl"
expect_true test "$(wc -l < mixed.jsonl.rejects.jsonl)" -eq 2
expect_true grep -q '"line": *2' mixed.jsonl.rejects.jsonl
run "$TMAP" data stats mixed.jsonl --on-error skip --rejects out/none.jsonl
expect_status 3
run "$TMAP" data stats mixed.jsonl --rejects r.jsonl
expect_status 1
expect_err "--rejects needs --on-error skip"

check "the rejects file never overwrites data, and holds only this run's rejects"
cp mixed.jsonl keep.jsonl
run "$TMAP" data stats keep.jsonl --on-error skip --rejects keep.jsonl
expect_status 1
expect_err "keep.jsonl: the rejects file is the input itself"
expect_true cmp -s keep.jsonl mixed.jsonl
printf '%s\n' "$good" > data.jsonl
run "$TMAP" data stats keep.jsonl --on-error skip --rejects data.jsonl
expect_status 1
expect_err "data.jsonl: exists and does not hold rejected records"
expect_true test "$(wc -l < data.jsonl)" -eq 1
# A clean rerun leaves no rejects of the earlier one behind.
run "$TMAP" data stats data.jsonl --on-error skip --rejects mixed.jsonl.rejects.jsonl
expect_status 0
expect_true test ! -e mixed.jsonl.rejects.jsonl
run "$TMAP" data stats keep.jsonl --on-error skip --rejects /dev/null
expect_status 0
expect_err "keep.jsonl: 2 bad records set aside in /dev/null"

check "--fields maps other keys"
printf '{"q": "What?", "a": "That.", "gold": "x"}\n' > custom.jsonl
run "$TMAP" data stats custom.jsonl --fields prompt=q,response=a,answer=gold
expect_status 0
expect_out "custom=1"
run "$TMAP" data stats custom.jsonl --fields prompt=q
expect_status 1
expect_err "--fields needs both prompt=KEY and response=KEY"
run "$TMAP" data stats custom.jsonl --fields prompt=q,reply=a
expect_status 1
expect_err "unknown role 'reply'"

check "JSON array input and mixed formats"
cat > mixed-formats.json <<'JSON'
[
  {"instruction": "Add", "input": "2 and 2", "output": "4"},
  {"question": "2+2?", "answer": "#### 4"},
  {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
  {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
  {"prompt": "p", "completion": "c"},
  {"question": "Sky?", "choices": {"text": ["blue", "green"], "label": ["A", "B"]}, "answerKey": "A"}
]
JSON
run "$TMAP" data stats mixed-formats.json
expect_status 0
expect_out "records    6"
expect_out "alpaca=1 gsm8k=1 sharegpt=1 openai=1 generic=1 mc=1"

check "hostile sizes: deep nesting, a 100 MB line, a million turns: rejected with file and line"
{ printf '{"prompt": "a", "response": "b", "x": '; head -c 100000 /dev/zero | tr '\0' '['
  head -c 100000 /dev/zero | tr '\0' ']'; printf '}\n'; } > deep.jsonl
run "$TMAP" data stats deep.jsonl
expect_status 2
expect_err "deep.jsonl:1: invalid JSON: maximum parsing depth reached"
{ printf '{"prompt": "a", "response": "'; head -c 100000000 /dev/zero | tr '\0' 'b'; printf '"}\n'; } > huge.jsonl
run "$TMAP" data stats huge.jsonl
expect_status 2
expect_err "huge.jsonl:1: record is 100000031 bytes, over the limit"
rm -f huge.jsonl
awk 'BEGIN { printf "{\"conversations\": ["; for (i = 0; i < 1000000; i++) printf "%s{\"from\":\"%s\",\"value\":\"hi\"}", (i ? "," : ""), (i % 2 ? "gpt" : "human"); print "]}" }' > turns.jsonl
run "$TMAP" data stats turns.jsonl
expect_status 2
expect_err "turns.jsonl:1: record is"
rm -f turns.jsonl

check "decontaminate: a pool without the questions of a test set, whatever their format and answer"
# Test questions 1-3 asked again as Alpaca (another answer), ShareGPT and
# OpenAI messages records, with CRLF and padding; two records of another
# question around them.
head -n 3 "$SRC/data/gsm8k/test.jsonl" > t3.jsonl
q=()   # the questions as JSON strings, escapes and all
while IFS= read -r line; do
    q+=("$(sed -E 's/^\{"question": ("([^"\\]|\\.)*"), "answer".*$/\1/' <<< "$line")")
done < t3.jsonl
{
    echo '{"instruction": "Name a prime.", "input": "", "output": "7"}'
    echo "{\"instruction\": \"  ${q[0]:1:-1}\\r\\n\", \"input\": \"\", \"output\": \"another answer\"}"
    echo "{\"conversations\": [{\"from\": \"human\", \"value\": ${q[1]}}, {\"from\": \"gpt\", \"value\": \"x\"}]}"
    echo "{\"messages\": [{\"role\": \"user\", \"content\": ${q[2]}}, {\"role\": \"assistant\", \"content\": \"y\"}]}"
    echo '{"instruction": "Name an even prime.", "input": "", "output": "2"}'
} > mixed.jsonl
run "$TMAP" data decontaminate mixed.jsonl --against t3.jsonl -o kept.jsonl --dropped dropped.jsonl
expect_status 0
expect_out "kept 2 of 5 records of mixed.jsonl in kept.jsonl; left out 3 that ask one of 3 questions of t3.jsonl (0 of them with the same answer); they are in dropped.jsonl"
expect_true cmp kept.jsonl <(sed -n '1p;5p' mixed.jsonl)      # byte for byte, in order
expect_true cmp dropped.jsonl <(sed -n '2,4p' mixed.jsonl)
# A reworded question is another question.
sed 's/"question": "/"question": "Please: /' t3.jsonl > reworded.jsonl
run "$TMAP" data decontaminate mixed.jsonl --against reworded.jsonl -o all.jsonl
expect_status 0
expect_true cmp all.jsonl mixed.jsonl
run "$TMAP" data decontaminate mixed.jsonl --against t3.jsonl -o mixed.jsonl
expect_status 1
expect_err "-o mixed.jsonl is the same file as POOL mixed.jsonl: writing it would destroy the input"
expect_true cmp mixed.jsonl <(cat mixed.jsonl)
run "$TMAP" data decontaminate mixed.jsonl -o x.jsonl
expect_status 1
expect_err "--against FILE is required"
{ cat t3.jsonl; echo '{"question": "cut'; } > bad-test.jsonl
run "$TMAP" data decontaminate mixed.jsonl --against bad-test.jsonl -o x.jsonl
expect_status 2
expect_err "bad-test.jsonl:4"
expect_true test ! -e x.jsonl

finish
