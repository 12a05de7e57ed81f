#!/usr/bin/env bash
# tmap select's peak memory on a large pool (no model needed): generates N
# Alpaca records (default 1,000,000, about 180 bytes each), a scores.csv
# with ten indicator columns and a weights.json, then runs `tmap select`
# under /usr/bin/time -v. Prints one line per figure:
#   select_memory n=N figure=NAME value=V
# The target (docs/design.md section 2): a million records under 2 GB.
#
# usage: bench/select_memory.sh [BUILD (build)] [N (1000000)] [DIR (a temporary folder)]
set -euo pipefail
build=${1:-build}
n=${2:-1000000}
dir=${3:-$(mktemp -d)}
mkdir -p "$dir"

indicators=(loss ifd quality complexity diversity relevance steps length lexical numeracy)

# Records with varied text, so that no two share a content hash.
awk -v n="$n" 'BEGIN {
    srand(7)
    for (i = 1; i <= n; i++)
        printf "{\"id\":\"r%d\",\"instruction\":\"Question %d: what is %d plus %d, times %d?\",\"output\":\"%d plus %d is %d; times %d is %d. The answer is %d.\"}\n",
               i, i, i % 977, int(rand() * 1000), i % 13, i % 977, 7, i % 977 + 7, 3, (i % 977 + 7) * 3, (i % 977 + 7) * 3
}' > "$dir/pool.jsonl"

header="id"
for name in "${indicators[@]}"; do header="$header,$name"; done
awk -v n="$n" -v header="$header" -v cols="${#indicators[@]}" 'BEGIN {
    srand(11)
    print header
    for (i = 1; i <= n; i++) {
        line = "r" i
        for (c = 0; c < cols; c++)
            line = line "," sprintf("%.17g", rand())
        print line
    }
}' > "$dir/scores.csv"

{
    echo '{"indicators": ['
    for j in "${!indicators[@]}"; do
        sep=","; [ "$j" -eq $((${#indicators[@]} - 1)) ] && sep=""
        echo "  {\"name\": \"${indicators[$j]}\", \"direction\": \"higher\", \"weight\": 0.1}$sep"
    done
    echo ']}'
} > "$dir/weights.json"

for mode in top filter; do
    /usr/bin/time -v "$build/tmap" select --quiet -d "$dir/pool.jsonl" --scores "$dir/scores.csv" \
        --weights "$dir/weights.json" --select "$mode" -o "$dir/selected.jsonl" \
        --table "$dir/table.csv" 2> "$dir/time.txt"
    rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
    echo "select_memory n=$n mode=$mode figure=peak_rss_mib value=$((rss_kib / 1024))"
    echo "select_memory n=$n mode=$mode figure=wall value=$wall"
    echo "select_memory n=$n mode=$mode figure=selected value=$(wc -l < "$dir/selected.jsonl")"
done
