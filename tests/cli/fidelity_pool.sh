#!/usr/bin/env bash
# bench_fidelity_pool: two hand-made corruption seeds with known losses. The
# mean over seeds and its interval (a constant difference per seed leaves
# the bootstrap nothing to vary), the seeds' own spread (t with 1 df), the
# corruption shares, and the refusals: runs on other held-out items, a
# folder without losses.csv, a malformed loss.
. "$(dirname "$0")/lib.sh"
POOL=$4

# seed_folder DIR TMAP RANDOM TOKENS: 3 items; every tmap row loses TMAP
# per item, the random rows RANDOM, the equal-token ones TOKENS. An arm
# name with a comma, quoted, as bench_fidelity writes it.
seed_folder() {
    mkdir -p "$1"
    printf '{"q":"a"}\n{"q":"b"}\n{"q":"c"}\n' > "$1/heldout.jsonl"
    {
        echo "arm,kind,seed,item_1,item_2,item_3"
        for s in 1 2; do echo "tmap,tmap,$s,$2,$2,$2"; done
        for s in 1 2; do echo "\"filter, equal weights-1\",filter,$s,$3,$3,$3"; done
        for r in 1 2; do for s in 1 2; do echo "random-$r,random,$s,$3,$3,$3"; done; done
        for s in 1 2; do echo "tokens-1,tokens,$s,$4,$4,$4"; done
    } > "$1/losses.csv"
    {
        echo "arm,records,tokens,corrupted,wrong_answer"
        echo "tmap,300,1000,$5,1"
        echo "\"filter, equal weights-1\",300,1000,9.0%,1"
    } > "$1/arms.csv"
}
seed_folder one 1.0 1.1 1.2 1.0%
seed_folder two 1.0 1.3 1.0 3.0%

check "two seeds: per seed, the mean and its interval, the spread over seeds"
run "$POOL" --bootstrap 200 one two
expect_status 0
# vs random: -0.1 and -0.3, mean -0.2; spread: 12.706 * 0.1414 / sqrt(2) = 1.2706.
expect_out "| tmap | 1.0% / 3.0% | -0.1000 / -0.3000 | **-0.2000 [-0.2000, -0.2000]** | [-1.4706, +1.0706] |"
# vs equal-token: -0.2 and 0.0, mean -0.1.
expect_out "| -0.2000 / +0.0000 | **-0.1000 [-0.1000, -0.1000]** | [-1.3706, +1.1706] |"
expect_out "| filter, equal weights-1 | 9.0% / 9.0% | +0.0000 / +0.0000 | +0.0000 [+0.0000, +0.0000] |"
# The random and token arms are references, not rows.
expect_true test "$(grep -c '^| random-\|^| tokens-' "$WORK/.out")" -eq 0

check "--html: both charts, each arm's mean, interval and seeds, the table"
run "$POOL" --bootstrap 200 --html pooled.html one two
expect_status 0
expect_true test "$(grep -c '<svg class="chart"' pooled.html)" -eq 2
# tmap against random: mean -0.2 (interval excludes zero: green), seeds -0.1 and -0.3.
expect_true grep -q '<title>tmap: -0.2000 \[-0.2000, -0.2000\]</title>' pooled.html
expect_true grep -q 'fill="#2f855a"><title>tmap: -0.2000' pooled.html
expect_true grep -q '<title>seed 1: -0.1000</title>' pooled.html
expect_true grep -q '<title>seed 2: -0.3000</title>' pooled.html
expect_true grep -q '<title>over seeds: \[-1.4706, +1.0706\]</title>' pooled.html
# The filter arm ties random: its dot is neither green nor red.
expect_true grep -q 'fill="#3182ce"><title>filter, equal weights-1: +0.0000' pooled.html
expect_true grep -q '<td>tmap</td><td>1.0% / 3.0%</td><td>-0.2000 \[-0.2000, -0.2000\]</td>' pooled.html
run "$POOL" --html no-such-dir/pooled.html one two
expect_status 1
expect_err "no-such-dir/pooled.html: cannot write"

check "one seed: the mean is that seed's difference, no spread"
run "$POOL" --bootstrap 200 two
expect_status 0
expect_out "| tmap | 3.0% | -0.3000 | **-0.3000 [-0.3000, -0.3000]** | - |"

check "runs on other held-out items are refused, named"
seed_folder three 1.0 1.1 1.2 1.0%
printf '{"q":"x"}\n{"q":"b"}\n{"q":"c"}\n' > three/heldout.jsonl
run "$POOL" one three
expect_status 1
expect_err "three/heldout.jsonl: its held-out items are not one's"

check "a folder without losses.csv, a malformed loss: named"
mkdir -p four
run "$POOL" one four
expect_status 1
expect_err "four/losses.csv: cannot open"
seed_folder five 1.0 1.1 1.2 1.0%
sed -i '2s/,1.0$/,1.O/' five/losses.csv
run "$POOL" one five
expect_status 1
expect_err "five/losses.csv:2: item 3: '1.O' is not a number"

finish
